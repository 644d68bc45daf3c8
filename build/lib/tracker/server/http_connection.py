"""One client connection of the tracker: frames HTTP requests, routes them, answers in order.

One handler (`Connection._dispatch`) turns every refusal into a bencoded `failure reason` and a
logged warning. An announce whose passkey and permission are in the access cache is answered
synchronously inside `data_received`, with no task or coroutine; only cache misses, a seeder's
due connect-back check (tracker.server.reachability), scrapes and receipt batches run as tasks,
and a connection answers its pipelined requests strictly in order. The announcing address is the
connection's, or on a trusted proxy's connection the client it names (tracker.server.proxies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

from tracker.server import responses
from tracker.server.access import MISS
from tracker.server.announce import AnnounceRequest, RequestError, parse_announce, parse_passkey, parse_scrape
from tracker.server.http import (
    CONTINUE,
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    HttpError,
    RequestHead,
    ok,
    parse_head,
    response,
)
from tracker.server.proxies import packed_ip
from tracker.server.receipt_intake import (
    BatchError,
    SinkFailure,
    decode_batch,
    encode_answer,
    is_json,
    process_batch,
)

if TYPE_CHECKING:
    from tracker.server.service import TrackerServer

MAX_BUFFERED_BYTES = MAX_HEAD_BYTES + MAX_BODY_BYTES  # pipelined input held while a request waits
NEVER = 1 << 62  # a deadline that does not come

log = logging.getLogger(__name__)


def route(path: bytes) -> tuple[bytes, bytes]:
    """(b"announce" or b"scrape", passkey segment) of a request path; HttpError 404 otherwise.

    `/<passkey>/announce` is the form handed out: its last segment starts with "announce", which
    is what Transmission and webtorrent look for before they derive a scrape URL (BEP 48's
    convention). `/announce/<passkey>` is still answered for the torrents handed out before.
    """
    if path.endswith(b"/announce"):
        return b"announce", path[1:-9]
    if path.endswith(b"/scrape"):
        return b"scrape", path[1:-7]
    if path.startswith(b"/announce/"):
        return b"announce", path[10:]
    if path.startswith(b"/scrape/"):
        return b"scrape", path[8:]
    raise HttpError(404, "no such path; announce at /<passkey>/announce")


class Connection(asyncio.Protocol):
    """One client connection: buffers input, frames requests, answers them in order."""

    def __init__(self, tracker: TrackerServer) -> None:
        self.tracker = tracker
        self.config = tracker.config
        self.transport: asyncio.Transport | None = None
        self.ip = b""  # the connection's address
        self.proxied = False  # from a trusted proxy: its requests say whose they are
        self.peer = "?"
        self.buffer = b""
        self.head: RequestHead | None = None  # parsed head whose body is still arriving
        self.body_start = 0
        self.busy = False  # a task is answering the current request
        self.writing_paused = False
        self.reading_paused = False
        self.deadline = NEVER

    # ----- asyncio callbacks -----

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is no asyncio.Transport subclass but has the same methods.
        transport = cast(asyncio.Transport, base)
        tracker = self.tracker
        peername = transport.get_extra_info("peername")
        try:
            self.ip = packed_ip(peername[0])
        except (TypeError, IndexError, OSError, ValueError):
            transport.abort()  # not an IP connection: nothing to announce from
            return
        if len(tracker.connections) >= tracker.config.max_connections:
            log.warning(
                "refused a connection from %s: %d connections open", peername[0], len(tracker.connections)
            )
            transport.abort()
            return
        self.transport = transport
        self.peer = str(peername[0])
        self.proxied = tracker.proxies.trusts(self.ip)
        self.deadline = tracker.now + self.config.keepalive_timeout
        tracker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tracker.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if not self.buffer and self.head is None and not self.busy:
            self.deadline = self.tracker.now + self.config.head_timeout  # a request starts
        self.buffer = self.buffer + data if self.buffer else data
        if self.busy or self.writing_paused:
            if len(self.buffer) > MAX_BUFFERED_BYTES and not self.reading_paused:
                self.transport.pause_reading()
                self.reading_paused = True
            return
        self._process()

    def eof_received(self) -> bool:
        return False  # a half-closed client gets its pending answers, then the connection closes

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._process()

    def close(self) -> None:
        """Close the connection after what was written."""
        if self.transport is not None:
            self.transport.close()

    # ----- framing -----

    def _process(self) -> None:
        """Answer every complete request in the buffer, until one needs to wait."""
        while not self.busy and not self.writing_paused and self.transport is not None:
            data = self.buffer
            head = self.head
            if head is None:
                if not data:
                    break
                end = data.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
                if end < 0:
                    if len(data) > MAX_HEAD_BYTES:
                        self._reject_http(HttpError(431, f"request head larger than {MAX_HEAD_BYTES} bytes"))
                    break
                try:
                    head = parse_head(data[:end])
                except HttpError as error:
                    self._reject_http(error)
                    break
                self.body_start = end + 4
                if head.content_length:
                    self.head = head
                    self.deadline = self.tracker.now + self.config.body_timeout
                    if head.expect_continue and len(data) < self.body_start + head.content_length:
                        self.transport.write(CONTINUE)
            need = self.body_start + head.content_length
            if len(data) < need:
                break
            body = data[self.body_start : need]
            self.buffer = data[need:]
            self.head = None
            self._dispatch(head, body)
            if not self.busy:
                self._idle_or_next()
        if self.reading_paused and self.transport is not None and len(self.buffer) <= MAX_BUFFERED_BYTES:
            self.reading_paused = False
            self.transport.resume_reading()

    def _idle_or_next(self) -> None:
        config = self.config
        self.deadline = self.tracker.now + (config.head_timeout if self.buffer else config.keepalive_timeout)

    def _write(self, payload: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(payload)
        if not keep_alive:
            transport.close()
            self.transport = None

    def _reject_http(self, error: HttpError) -> None:
        """Answer a request that cannot be framed or routed, and close."""
        self.tracker.refusals += 1
        log.warning("bad HTTP request from %s: %s", self.peer, error)
        self._write(response(error.status, responses.failure(str(error)), False), False)

    def _refuse(self, reason: str, keep_alive: bool, status: int = 200) -> None:
        """Answer with a bencoded failure reason (HTTP 200 so that clients show the reason)."""
        self.tracker.refusals += 1
        log.warning("refused request from %s: %s", self.peer, reason)
        self._write(response(status, responses.failure(reason), keep_alive), keep_alive)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self.busy = True
        self.deadline = NEVER
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tracker.tasks.add(task)
        task.add_done_callback(self.tracker.tasks.discard)

    def _done(self) -> None:
        """A task finished its request: go on with pipelined ones."""
        self.busy = False
        if self.transport is not None:
            self._idle_or_next()
            self._process()

    # ----- routing -----

    def _dispatch(self, head: RequestHead, body: bytes) -> None:
        """Route one request; every refusal becomes a bencoded failure reason."""
        self.tracker.requests += 1
        keep_alive = head.keep_alive
        path, _, query = head.target.partition(b"?")
        try:
            if path == b"/receipts":
                if head.method != b"POST":
                    raise HttpError(405, "send receipts with POST")
                self._spawn(self._receipts(body, head.content_type, keep_alive))
                return
            kind, segment = route(path)
            if head.method != b"GET":
                raise HttpError(405, f"{kind.decode()} with GET")
            if kind == b"announce":
                ip = self.ip
                if self.proxied:
                    ip = self.tracker.proxies.client(ip, head.forwarded_for, head.real_ip)
                self._announce(segment, query, keep_alive, ip)
            else:
                passkey = parse_passkey(segment)
                self._spawn(self._scrape(passkey, parse_scrape(query), keep_alive))
        except RequestError as error:
            self._refuse(str(error), keep_alive)
        except HttpError as error:
            self._refuse(str(error), keep_alive, error.status)
        except Exception:
            self.tracker.internal_errors += 1
            log.exception("internal error on %r from %s", head.target[:200], self.peer)
            self._write(response(500, responses.failure("internal error"), False), False)

    def _announce(self, segment: bytes, query: bytes, keep_alive: bool, ip: bytes) -> None:
        tracker = self.tracker
        tracker.announces += 1
        passkey = parse_passkey(segment)
        request = parse_announce(query)
        now = tracker.now
        ident = tracker.access.wallet_now(passkey, now)
        if ident is None:
            raise RequestError("unknown passkey; download the torrent again from the store")
        if ident is not MISS:
            allowed = tracker.access.may_join_now(ident[0], request.info_hash, now)
            if allowed is True:
                if tracker.reachability is None:
                    self._write(ok(tracker.answer_announce(request, ident[1], ip), keep_alive), keep_alive)
                elif tracker.needs_check(request, ip):
                    self._spawn(self._announce_checked(request, ident[1], ip, keep_alive))
                else:
                    answer = tracker.answer_announce(request, ident[1], ip, tracker.verdict(request, ip))
                    self._write(ok(answer, keep_alive), keep_alive)
                return
            if allowed is False:
                raise RequestError("this account has not bought this torrent")
        self._spawn(self._announce_later(passkey, request, keep_alive, ip))

    # ----- requests that wait -----

    async def _announce_later(
        self, passkey: str, request: AnnounceRequest, keep_alive: bool, ip: bytes
    ) -> None:
        tracker = self.tracker
        try:
            ident = await tracker.access.wallet(passkey, tracker.now)
            if ident is None:
                raise RequestError("unknown passkey; download the torrent again from the store")
            if not await tracker.access.may_join(ident[0], request.info_hash, tracker.now):
                raise RequestError("this account has not bought this torrent")
            connectable = await self._connectable(request, ip)
            self._write(
                ok(tracker.answer_announce(request, ident[1], ip, connectable), keep_alive), keep_alive
            )
        except RequestError as error:
            self._refuse(str(error), keep_alive)
        except Exception:
            log.exception("policy failed on an announce from %s", self.peer)
            self._refuse("tracker temporarily unavailable; try again later", keep_alive, 503)
        finally:
            self._done()

    async def _connectable(self, request: AnnounceRequest, ip: bytes) -> bool | None:
        """The seeder's connect-back verdict, checking first when it is due."""
        tracker = self.tracker
        if not tracker.needs_check(request, ip):
            return tracker.verdict(request, ip)
        verdict = await tracker.check(request, ip)
        return tracker.verdict(request, ip) if verdict is None else verdict

    async def _announce_checked(
        self, request: AnnounceRequest, tag: bytes, ip: bytes, keep_alive: bool
    ) -> None:
        """A permitted seeder's announce, answered once the connect-back has its verdict."""
        tracker = self.tracker
        try:
            connectable = await self._connectable(request, ip)
            self._write(ok(tracker.answer_announce(request, tag, ip, connectable), keep_alive), keep_alive)
        except RequestError as error:
            self._refuse(str(error), keep_alive)
        except Exception:
            tracker.internal_errors += 1
            log.exception("connect check failed on an announce from %s", self.peer)
            self._write(response(500, responses.failure("internal error"), False), False)
        finally:
            self._done()

    async def _scrape(self, passkey: str, hashes: list[bytes], keep_alive: bool) -> None:
        tracker = self.tracker
        try:
            ident = await tracker.access.wallet(passkey, tracker.now)
            if ident is None:
                raise RequestError("unknown passkey; download the torrent again from the store")
            rows = [
                (info_hash, *tracker.stats(info_hash), tracker.reachable_seeds(info_hash))
                for info_hash in hashes
                if await tracker.access.may_join(ident[0], info_hash, tracker.now)
            ]
            self._write(ok(responses.scrape(rows), keep_alive), keep_alive)
        except RequestError as error:
            self._refuse(str(error), keep_alive)
        except Exception:
            log.exception("policy failed on a scrape from %s", self.peer)
            self._refuse("tracker temporarily unavailable; try again later", keep_alive, 503)
        finally:
            self._done()

    async def _receipts(self, body: bytes, content_type: bytes, keep_alive: bool) -> None:
        tracker = self.tracker
        as_json = is_json(content_type)
        kind = b"application/json" if as_json else b"text/plain"
        try:
            messages = decode_batch(body, as_json)
            async with tracker.batch_slots:
                results = await process_batch(messages, tracker.verifier, tracker.sink)
            self._write(
                response(200, encode_answer({"results": results}, as_json), keep_alive, kind), keep_alive
            )
        except BatchError as error:
            tracker.refusals += 1
            log.warning("refused receipts from %s: %s", self.peer, error)
            self._write(
                response(400, encode_answer({"failure reason": str(error)}, as_json), keep_alive, kind),
                keep_alive,
            )
        except SinkFailure as error:
            self._write(
                response(503, encode_answer({"failure reason": str(error)}, as_json), keep_alive, kind),
                keep_alive,
            )
        finally:
            self._done()
