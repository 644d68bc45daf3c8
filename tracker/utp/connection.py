"""One µTP connection: its state machine, send and receive windows, and an asyncio transport face.

`UtpConnection` is an `asyncio.Transport` to the protocol above it (the peer connection, or an
`asyncio.StreamReaderProtocol` for stream users), so code written for TCP runs over it unchanged:
`write`/`writelines` queue bytes, `pause_writing`/`resume_writing` follow the write buffer limits,
received bytes go to `buffer_updated` (a `BufferedProtocol`) or `data_received`, `close` flushes
and sends a FIN, `abort` sends a RESET.

Sending: queued bytes are cut into packets of at most `packet_size` when the congestion window
(LEDBAT) and the peer's receive window allow; every packet stays in `outbuf` until acknowledged.
A transmission is resent once three transmissions sent after it were acknowledged (`_Flight`), on
three duplicate ACKs, when a partial ACK in recovery stops short of the recovery point, once as a
tail probe after two round trips of silence, and when the retransmission timer fires (which also
backs the timer off; a peer that answers nothing through `max_timeouts` timers in a row is gone).
docs/ARCHITECTURE.md "µTP" tells why each rule is there. Receiving: packets after a
gap wait in a bounded reordering buffer; duplicates and packets outside the window are dropped
(and acknowledged, so a peer whose ACK was lost learns it); one ACK (with a selective ACK of the
gap) answers each batch of datagrams.

Connection ids follow BEP 29: the side that connects picks `recv_id` and sends with `recv_id + 1`;
the side that accepts receives on the SYN's id + 1 and sends with the SYN's id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from tracker.utp import packet as pk
from tracker.utp.ledbat import Congestion
from tracker.utp.packet import SEQ_MASK, Packet

if TYPE_CHECKING:
    from tracker.utp.endpoint import UtpEndpoint

log = logging.getLogger(__name__)

SYN_SENT, SYN_RECV, CONNECTED, CLOSING, CLOSED = "syn-sent", "syn-recv", "connected", "closing", "closed"
RECV_WINDOW = 4 * 1024 * 1024  # bytes we let a peer have in flight towards us
REORDER_MAX = 4096  # packets past a gap we keep; a packet further ahead is dropped
MAX_WINDOW = 8 * 1024 * 1024  # congestion window cap (bytes in flight)
MAX_IN_FLIGHT_PACKETS = 16384  # well inside half the sequence space
DUP_ACKS = 3  # duplicate or selective ACKs past a packet before it is resent (as TCP)
KEEPALIVE = 29.0  # seconds of silence before we send an ACK to keep NAT mappings (libutp's figure)
PROBE_MIN = 0.1  # seconds of silence, at least, before a tail probe (the timer's tick is 0.05 s)
WRITE_HIGH = 1024 * 1024
WRITE_LOW = 256 * 1024


def _now_us() -> int:
    return (time.monotonic_ns() // 1000) & pk.MICROS_MASK


class _Out:
    """A packet we sent and the peer has not acknowledged yet."""

    __slots__ = ("fast_resent", "in_flight", "kind", "order", "payload", "sent_at", "transmissions")

    def __init__(self, kind: int, payload: bytes) -> None:
        self.kind = kind
        self.payload = payload
        self.sent_at = 0.0
        self.transmissions = 0
        self.order = 0  # when it was last sent, counted in transmissions on this connection
        self.in_flight = False  # counted in the window (sent and not declared lost)
        self.fast_resent = False  # resent on duplicate ACKs (once: the timer deals with the rest)


class _Flight:
    """Transmissions in the order they left, to find the lost ones: a transmission is lost once
    three sent after it were acknowledged (cumulatively or selectively). This is libutp's and
    TCP's rule of three, counted in sending order rather than by sequence number, so that a
    retransmission that is lost again is found the same way instead of waiting for the timer."""

    __slots__ = ("acked", "count", "probed", "probes", "sent")

    def __init__(self) -> None:
        self.count = 0  # transmissions so far
        self.probed: int | None = None  # the oldest packet when the last tail probe was sent
        self.probes = 0  # tail probes sent, in all
        self.sent: deque[tuple[int, int]] = deque()  # (order, seq) not yet known lost or acked
        self.acked = [0, 0, 0]  # the three latest transmissions acknowledged, lowest first

    def transmitted(self, seq: int) -> int:
        """Record a transmission of `seq` and return its order."""
        self.count += 1
        self.sent.append((self.count, seq))
        return self.count

    def acknowledged(self, order: int) -> None:
        """The transmission numbered `order` was acknowledged."""
        acked = self.acked
        if order > acked[0]:
            acked[0] = order
            acked.sort()

    def overtaken(self) -> list[tuple[int, int]]:
        """(order, seq) of the transmissions that three later ones overtook, oldest first."""
        threshold = self.acked[0]
        sent = self.sent
        out = []
        while sent and sent[0][0] < threshold:
            out.append(sent.popleft())
        return out


class UtpConnection(asyncio.Transport):
    """A µTP connection to one address: the transport its protocol writes to."""

    def __init__(
        self,
        endpoint: UtpEndpoint,
        address: tuple[str, int],
        recv_id: int,
        send_id: int,
        seq_nr: int,
        state: str,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.address = address
        self.recv_id = recv_id
        self.send_id = send_id
        self.state = state
        self.protocol: asyncio.BaseProtocol | None = None
        self._buffered_protocol = False
        self.half_open = False  # accepted, and no data packet completed the handshake yet
        loop = endpoint.loop
        self.loop = loop
        now = loop.time()
        self.created_at = now
        self.last_received = now
        self.last_sent = now
        self.packet_size = endpoint.packet_size
        self.cc = Congestion(self.packet_size, MAX_WINDOW)
        # sending
        self.seq_nr = seq_nr  # the next sequence number we assign
        self.outbuf: dict[int, _Out] = {}
        self.snd_una = seq_nr  # the oldest sequence number not acknowledged yet
        self.in_flight = 0  # bytes sent, not acknowledged and not declared lost
        self.lost: set[int] = set()  # packets to send again
        self.flight = _Flight()
        self.unacked_bytes = 0  # payload bytes in outbuf
        self.send_queue = bytearray()
        self.peer_window = RECV_WINDOW  # until the peer says otherwise
        self.peer_buffer = 0  # the largest window the peer advertised: its receive buffer
        self.last_ack = (seq_nr - 1) & SEQ_MASK
        self.dup_acks = 0
        self.loss_seq = (seq_nr - 1) & SEQ_MASK  # a loss after this one cuts the window again
        self.window_full = False
        self.rto_deadline: float | None = None
        self.timeouts = 0  # retransmission timers in a row that fired without progress
        self.timeouts_fired = 0  # retransmission timers that fired, in all
        self.fin_seq: int | None = None  # our FIN's sequence number once queued
        self.close_requested = False
        self._write_high = WRITE_HIGH
        self._write_low = WRITE_LOW
        self._writing_paused = False
        # receiving
        self.ack_nr = 0  # the last sequence number received in order
        self.reorder: dict[int, tuple[int, bytes]] = {}
        self.reorder_bytes = 0
        self.reply_micro = 0  # the one-way delay we measured for the peer's latest packet
        self.eof_seq: int | None = None  # the peer's FIN
        self.got_eof = False
        self.ack_owed = False
        self._reading_paused = False
        self._pending: deque[bytes] = deque()  # delivered in order while reading is paused
        self.connected: asyncio.Future[None] = loop.create_future()
        self.error: Exception | None = None

    @property
    def _name(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def __repr__(self) -> str:
        return f"<utp {self.address[0]}:{self.address[1]} id {self.recv_id} {self.state}>"

    # ----- asyncio.Transport -----

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """`peername` and `sockname` as a TCP transport gives them."""
        if name == "peername":
            return self.address
        if name == "sockname":
            return self.endpoint.sockname
        return default

    def is_closing(self) -> bool:
        """Whether `close` or `abort` was called or the connection ended."""
        return self.close_requested or self.state == CLOSED

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand received bytes and events to `protocol`."""
        self.protocol = protocol
        self._buffered_protocol = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol above this connection."""
        assert self.protocol is not None
        return self.protocol

    def is_reading(self) -> bool:
        """Whether received bytes are handed on as they arrive."""
        return not self._reading_paused

    def pause_reading(self) -> None:
        """Keep received bytes here (the receive window closes as they pile up)."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Hand on what piled up, then new bytes as they arrive."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        while self._pending and not self._reading_paused and self.state != CLOSED:
            self._deliver(self._pending.popleft())
        self._check_eof()
        self._owe_ack()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """When `pause_writing` and `resume_writing` are called (bytes not yet acknowledged)."""
        self._write_high = WRITE_HIGH if high is None else high
        self._write_low = self._write_high // 4 if low is None else low

    def get_write_buffer_size(self) -> int:
        """Bytes queued or sent and not yet acknowledged."""
        return len(self.send_queue) + self.unacked_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The (low, high) limits."""
        return self._write_low, self._write_high

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes; they leave as the windows allow."""
        if self.close_requested or self.state == CLOSED:
            return
        self.send_queue += data
        self.endpoint.schedule(self)
        if not self._writing_paused and self.get_write_buffer_size() > self._write_high:
            self._writing_paused = True
            self._call("pause_writing")

    def writelines(self, list_of_data: Any) -> None:
        """Queue several buffers."""
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        """µTP's FIN ends the whole connection, not one direction."""
        return False

    def write_eof(self) -> None:
        """Not available: see `can_write_eof`."""
        raise NotImplementedError("µTP has no half-close")

    def close(self) -> None:
        """Send what is queued, then a FIN; the protocol hears `connection_lost` once it is acked."""
        if self.close_requested or self.state == CLOSED:
            return
        self.close_requested = True
        if self.state in (SYN_SENT, SYN_RECV):
            self._destroy(None, reset=True)
            return
        self.state = CLOSING
        self.endpoint.schedule(self)

    def abort(self) -> None:
        """Drop everything queued and reset the connection."""
        if self.state == CLOSED:
            return
        self.close_requested = True
        self._destroy(None, reset=True)

    # ----- events from the endpoint -----

    def start_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """The handshake completed: introduce the connection to its protocol."""
        self.set_protocol(protocol)
        protocol.connection_made(self)
        if not self.connected.done():
            self.connected.set_result(None)

    def incoming(self, p: Packet, now: float) -> None:
        """Handle one packet addressed to this connection."""
        self.last_received = now
        self.reply_micro = (_now_us() - p.timestamp) & pk.MICROS_MASK
        kind = p.type
        if kind == pk.ST_RESET:
            self._destroy(ConnectionResetError(f"{self._name} reset the µTP connection"))
            return
        if kind == pk.ST_SYN:
            # our ACK of their SYN was lost: say it again
            if self.state == SYN_RECV:
                self.send_control(pk.ST_STATE)
            return
        if self.state == SYN_SENT:
            if kind != pk.ST_STATE:
                return
            self.ack_nr = (p.seq_nr - 1) & SEQ_MASK
            self.state = CONNECTED
            self.endpoint.connection_established(self)
        elif self.state == SYN_RECV:
            if kind == pk.ST_STATE:
                return  # nothing of ours to acknowledge yet
            self.state = CONNECTED
            self.endpoint.connection_established(self)
        if self.state == CLOSED:
            return
        self.peer_window = p.wnd_size
        self.peer_buffer = max(self.peer_buffer, p.wnd_size)
        self._process_ack(p, now)
        if self.state == CLOSED:
            return
        if kind != pk.ST_STATE:
            self._receive(p)
        self.endpoint.schedule(self)

    def tick(self, now: float) -> None:
        """Timers: retransmission, keep-alive and the half-open limit."""
        if self.state in (SYN_RECV,) and now - self.created_at > self.endpoint.syn_recv_timeout:
            self._destroy(TimeoutError("the peer never completed the µTP handshake"))
            return
        if self.rto_deadline is not None and now >= self.rto_deadline:
            self._timed_out(now)
            return
        if self.outbuf and self.flight.probed != self.snd_una and self.state in (CONNECTED, CLOSING):
            self._maybe_probe(now)
        if self.state == CONNECTED and now - self.last_sent > KEEPALIVE:
            self.send_control(pk.ST_STATE)

    def _maybe_probe(self, now: float) -> None:
        """A tail probe (TCP's TLP, at the oldest packet): when the last packets of a flight or
        their ACKs are lost, nothing acknowledges anything after them and no rule of three can
        fire; after two round trips of silence resend the oldest unacknowledged packet once,
        without cutting the window. Its ACK either moves past it (it was lost: the packets
        behind it are then resent one per round trip, see `_partial_ack`) or shows the path was
        only slow. The full timer (0.5 s at least) stays the last resort."""
        una = self.snd_una
        first = self.outbuf.get(una)
        wait = max(2 * (self.cc.rtt or 0.0), PROBE_MIN)
        if first is None or not first.in_flight or first.kind == pk.ST_SYN:
            return
        if now - first.sent_at < wait or now - self.last_received < wait:
            return
        self.flight.probed = una
        self.flight.probes += 1
        first.in_flight = False
        self.in_flight -= len(first.payload)
        self.loss_seq = (self.seq_nr - 1) & SEQ_MASK  # recovery runs to what is out now
        self._transmit(una, first, now)

    # ----- receiving -----

    def _receive(self, p: Packet) -> None:
        seq = p.seq_nr
        ahead = (seq - self.ack_nr) & SEQ_MASK
        if ahead == 0 or ahead > REORDER_MAX:
            self.ack_owed = True  # a duplicate (or from far outside): ACK so the peer stops resending
            return
        if self.eof_seq is not None and ((seq - self.eof_seq) & SEQ_MASK) < 0x8000 and seq != self.eof_seq:
            return  # nothing counts after the peer's FIN
        kind = p.type
        if kind == pk.ST_FIN:
            self.eof_seq = seq
        self.ack_owed = True
        if ahead != 1:
            if seq not in self.reorder:
                size = len(p.payload)
                if self.reorder_bytes + size > RECV_WINDOW:
                    return
                self.reorder[seq] = (kind, bytes(p.payload))
                self.reorder_bytes += size
            return
        self.ack_nr = seq
        if p.payload:
            self._deliver_or_keep(p.payload)
        reorder = self.reorder
        while reorder:
            nxt = (self.ack_nr + 1) & SEQ_MASK
            item = reorder.pop(nxt, None)
            if item is None:
                break
            self.ack_nr = nxt
            self.reorder_bytes -= len(item[1])
            if item[1]:
                self._deliver_or_keep(item[1])
            if self.state == CLOSED:
                return
        self._check_eof()

    def _deliver_or_keep(self, data: memoryview | bytes) -> None:
        if self._reading_paused or self._pending:
            self._pending.append(bytes(data))
        else:
            self._deliver(data)

    def _deliver(self, data: memoryview | bytes) -> None:
        protocol = self.protocol
        # Like an asyncio TCP transport, which stops reading once closed: a protocol that closed
        # its transport (it dropped the peer mid-buffer, say) is handed nothing more.
        if protocol is None or self.state == CLOSED or self.close_requested:
            return
        try:
            if self._buffered_protocol:
                view = memoryview(data)
                while view and not self.close_requested:
                    buf = protocol.get_buffer(len(view))  # type: ignore[attr-defined]
                    n = min(len(buf), len(view))
                    if n == 0:
                        raise RuntimeError("get_buffer returned an empty buffer")
                    buf[:n] = view[:n]
                    view = view[n:]
                    protocol.buffer_updated(n)  # type: ignore[attr-defined]
            else:
                protocol.data_received(bytes(data))  # type: ignore[attr-defined]
        except Exception:
            log.exception("%r: the protocol failed on received data", self)
            self.abort()

    def _check_eof(self) -> None:
        if self.got_eof or self.eof_seq is None or self.ack_nr != self.eof_seq or self._pending:
            return
        self.got_eof = True
        keep_open = False
        if self.protocol is not None and self.state != CLOSED:
            keep_open = bool(self.protocol.eof_received())  # type: ignore[attr-defined]
        if not keep_open:
            self.close()

    def _owe_ack(self) -> None:
        self.ack_owed = True
        self.endpoint.schedule(self)

    def receive_window(self) -> int:
        """Bytes we can still take in (what waits for the protocol or a gap counts against it)."""
        held = self.reorder_bytes + sum(map(len, self._pending))
        return max(RECV_WINDOW - held, 0)

    # ----- acknowledgements of what we sent -----

    def _process_ack(self, p: Packet, now: float) -> None:
        ack = p.ack_nr
        outbuf = self.outbuf
        acked_bytes = 0
        progress = False
        window_full = self.window_full
        rtt_sample: float | None = None
        una = self.snd_una
        span = (self.seq_nr - una) & SEQ_MASK
        if ((ack - una) & SEQ_MASK) < span:
            acked_bytes, rtt_sample = self._cumulative(ack, now)
            progress = True
        if p.sack is not None and outbuf:
            sacked_bytes, sample = self._selective(ack, p.sack, now)
            if sacked_bytes:
                acked_bytes += sacked_bytes
                progress = True
                rtt_sample = sample or rtt_sample
        while self.snd_una != self.seq_nr and self.snd_una not in outbuf:
            self.snd_una = (self.snd_una + 1) & SEQ_MASK
        if progress:
            self.last_ack = ack
            self.dup_acks = 0
            self.timeouts = 0
            self.cc.progress()
            self._restart_timer(now, moved=self.snd_una != una)
            self._detect_losses()
            if self.snd_una != una:
                self._partial_ack()
        elif p.type == pk.ST_STATE and ack == self.last_ack and outbuf:
            self._duplicate_ack()
        if rtt_sample is not None:
            self.cc.rtt_sample(rtt_sample)
        if acked_bytes:
            self.cc.delay_sample(p.timestamp_diff, now)
            self.cc.acked(acked_bytes, window_full)
            if self._writing_paused and self.get_write_buffer_size() <= self._write_low:
                self._writing_paused = False
                self._call("resume_writing")
        if self.fin_seq is not None and not outbuf and self.state == CLOSING and self.close_requested:
            self._destroy(None)

    def _restart_timer(self, now: float, *, moved: bool) -> None:
        """The timer runs from the oldest packet still unacknowledged: selective ACKs of later
        packets do not push it back (a lost retransmission would wait for ever behind them)."""
        if not self.outbuf:
            self.rto_deadline = None
        elif moved or self.rto_deadline is None:
            self.rto_deadline = now + self.cc.rto

    def _selective(self, ack: int, sack: bytes, now: float) -> tuple[int, float | None]:
        """Packets a selective ACK reports: (bytes newly acknowledged, a round-trip sample)."""
        outbuf = self.outbuf
        acked_bytes = 0
        rtt_sample = None
        for seq in pk.sacked(ack, sack):
            out = outbuf.pop(seq, None)
            if out is not None:
                acked_bytes += self._acked(seq, out)
                if out.transmissions == 1:
                    rtt_sample = now - out.sent_at
        return acked_bytes, rtt_sample

    def _duplicate_ack(self) -> None:
        """The third ACK of the same packet: the one after it is lost (TCP's fast retransmit)."""
        self.dup_acks += 1
        if self.dup_acks == DUP_ACKS:
            first = self.outbuf.get(self.snd_una)
            if first is not None and not first.fast_resent and first.in_flight:
                first.fast_resent = True
                self._declare_lost(self.snd_una, first)

    def _cumulative(self, ack: int, now: float) -> tuple[int, float | None]:
        """Everything up to `ack` arrived: (bytes newly acknowledged, a round-trip sample)."""
        outbuf = self.outbuf
        acked_bytes = 0
        rtt_sample = None
        seq = self.snd_una
        end = (ack + 1) & SEQ_MASK
        while seq != end:
            out = outbuf.pop(seq, None)
            if out is not None:
                acked_bytes += self._acked(seq, out)
                if out.transmissions == 1:
                    rtt_sample = now - out.sent_at
            seq = (seq + 1) & SEQ_MASK
        self.snd_una = end
        return acked_bytes, rtt_sample

    def _acked(self, seq: int, out: _Out) -> int:
        size = len(out.payload)
        if out.in_flight:
            self.in_flight -= size
        else:
            self.lost.discard(seq)
        self.unacked_bytes -= size
        self.flight.acknowledged(out.order)
        return size

    def _detect_losses(self) -> None:
        """Declare lost what three later transmissions overtook (see `_Flight`)."""
        outbuf = self.outbuf
        for order, seq in self.flight.overtaken():
            out = outbuf.get(seq)
            if out is not None and out.order == order and out.in_flight:
                self._declare_lost(seq, out)

    def _partial_ack(self) -> None:
        """In recovery, an ACK that moved past a retransmission but stops short of what was out
        when the loss was found means the next packet is lost too (TCP NewReno): resend it now.
        libtorrent's selective ACKs cover a few dozen packets past a gap, so a burst lost in a
        row is repaired one round trip per packet instead of waiting for the timer."""
        una = self.snd_una
        if ((self.loss_seq - una) & SEQ_MASK) >= 0x8000:
            return  # past the recovery point
        out = self.outbuf.get(una)
        if out is not None and out.in_flight and out.order < self.flight.acked[2]:
            self._declare_lost(una, out)

    def _declare_lost(self, seq: int, out: _Out) -> None:
        out.in_flight = False
        self.in_flight -= len(out.payload)
        self.lost.add(seq)
        if ((seq - self.loss_seq) & SEQ_MASK) < 0x8000 and seq != self.loss_seq:
            self.cc.lost()  # once per window of data: packets sent before the cut do not cut again
            self.loss_seq = (self.seq_nr - 1) & SEQ_MASK
        self.endpoint.schedule(self)

    def _timed_out(self, now: float) -> None:
        self.timeouts += 1
        self.timeouts_fired += 1
        limit = self.endpoint.syn_retries if self.state == SYN_SENT else self.endpoint.max_timeouts
        if self.timeouts > limit:
            self._destroy(TimeoutError(f"{self._name} stopped answering over µTP"))
            return
        self.cc.timed_out()
        for seq, out in self.outbuf.items():
            if out.in_flight:
                out.in_flight = False
                self.in_flight -= len(out.payload)
                self.lost.add(seq)
        self.flight.sent.clear()
        self.loss_seq = (self.seq_nr - 1) & SEQ_MASK
        self.rto_deadline = now + self.cc.rto
        self.endpoint.schedule(self)

    # ----- sending -----

    def flush(self, now: float) -> None:
        """Send what the windows allow: lost packets first, then new data; then an owed ACK."""
        if self.state == CLOSED:
            return
        window = min(self.cc.window, self.peer_window)
        sent = self._resend_lost(now, window) if self.lost else False
        if self.state in (CONNECTED, CLOSING):
            sent = self._send_new(now, window) or sent
            if self.close_requested and not self.send_queue and self.fin_seq is None:
                self.fin_seq = self.seq_nr
                self._queue_packet(pk.ST_FIN, b"", now)
                sent = True
                if self.got_eof:  # both sides are done: nobody waits for the ACK of our FIN
                    self._destroy(None)
                    return
        if sent:
            self.ack_owed = False  # every packet carries the ACK
        if self.ack_owed:
            self.ack_owed = False
            self.send_control(pk.ST_STATE)

    def _resend_lost(self, now: float, window: float) -> bool:
        """Resend packets declared lost, oldest first, as far as the window allows; the oldest
        unacknowledged one goes whatever the window (as libutp's and libtorrent's fast resend):
        the receiver cannot hand anything on, nor free its buffer, until it has it."""
        una = self.snd_una
        sent = False
        for seq in sorted(self.lost, key=lambda s: (s - una) & SEQ_MASK):
            out = self.outbuf[seq]
            if seq != una and self.in_flight and self.in_flight + len(out.payload) > window:
                self.window_full = True
                break
            self.lost.discard(seq)
            self._transmit(seq, out, now)
            sent = True
        return sent

    def _send_new(self, now: float, window: float) -> bool:
        """Cut queued bytes into packets while the window has room (always one if none is out).

        New data leaves one packet of the peer's advertised window free, and stays within the
        number of packets past a gap its reorder buffer holds (libtorrent: its buffer / 1100
        bytes): a receiver whose buffer fills with packets after a gap drops everything,
        including the retransmission that would fill the gap (libtorrent does), and the
        connection deadlocks."""
        queue = self.send_queue
        size = self.packet_size
        if not queue:
            self.window_full = False  # limited by the application, not the window: no growth
            return False
        window = min(window, self.peer_window - size)
        max_span = min(max(16, self.peer_buffer // 1100) - 1, MAX_IN_FLIGHT_PACKETS)
        sent = False
        while queue:
            take = min(size, len(queue))
            if self.in_flight and self.in_flight + take > window:
                self.window_full = True
                break
            if ((self.seq_nr - self.snd_una) & SEQ_MASK) >= max_span:
                break
            payload = bytes(queue[:take])
            del queue[:take]
            self._queue_packet(pk.ST_DATA, payload, now)
            sent = True
        return sent

    def _queue_packet(self, kind: int, payload: bytes, now: float) -> None:
        seq = self.seq_nr
        self.seq_nr = (seq + 1) & SEQ_MASK
        out = _Out(kind, payload)
        self.outbuf[seq] = out
        self.unacked_bytes += len(payload)
        self._transmit(seq, out, now)

    def _transmit(self, seq: int, out: _Out, now: float) -> None:
        out.transmissions += 1
        out.sent_at = now
        out.in_flight = True
        out.order = self.flight.transmitted(seq)
        self.in_flight += len(out.payload)
        if self.rto_deadline is None:
            self.rto_deadline = now + self.cc.rto
        self.last_sent = now
        self.endpoint.send(
            pk.encode(
                out.kind,
                self.recv_id if out.kind == pk.ST_SYN else self.send_id,
                _now_us(),
                self.reply_micro,
                self.receive_window(),
                seq,
                self.ack_nr,
                out.payload,
            ),
            self.address,
        )

    def send_control(self, kind: int) -> None:
        """An ACK (with a selective ACK of any gap), a SYN's answer, or a RESET."""
        sack = pk.sack_bits(self.ack_nr, self.reorder) if kind == pk.ST_STATE and self.reorder else None
        self.last_sent = self.loop.time()
        now_us = _now_us()
        window = self.receive_window()
        data = pk.encode(
            kind, self.send_id, now_us, self.reply_micro, window, self.seq_nr, self.ack_nr, sack=sack
        )
        self.endpoint.send(data, self.address)

    def send_syn(self) -> None:
        """Open the connection (SYN carries the id we receive on; it takes a sequence number)."""
        now = self.loop.time()
        seq = self.seq_nr
        self.seq_nr = (seq + 1) & SEQ_MASK
        out = _Out(pk.ST_SYN, b"")
        self.outbuf[seq] = out
        out.transmissions += 1
        out.sent_at = now
        out.in_flight = True
        self.rto_deadline = now + self.cc.rto
        self.last_sent = now
        syn = pk.encode(pk.ST_SYN, self.recv_id, _now_us(), 0, self.receive_window(), seq, 0)
        self.endpoint.send(syn, self.address)

    # ----- the end -----

    def _call(self, name: str) -> None:
        if self.protocol is None:
            return
        try:
            getattr(self.protocol, name)()
        except Exception:
            log.exception("%r: protocol.%s failed", self, name)

    def _destroy(self, error: Exception | None, *, reset: bool = False) -> None:
        if self.state == CLOSED:
            return
        if reset and self.state != SYN_SENT:
            self.send_control(pk.ST_RESET)
        self.state = CLOSED
        self.error = error
        self.rto_deadline = None
        self.outbuf.clear()
        self.lost.clear()
        self.flight.sent.clear()
        self.send_queue.clear()
        self._pending.clear()
        self.endpoint.forget(self)
        if not self.connected.done():
            self.connected.set_exception(error or ConnectionAbortedError("µTP connection closed"))
            self.connected.exception()  # retrieved: nobody need be waiting
        if self.protocol is not None:
            protocol = self.protocol
            self.loop.call_soon(protocol.connection_lost, error)
