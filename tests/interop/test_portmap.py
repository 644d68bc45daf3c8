"""The port mapper's NAT-PMP client against a gateway that lies, and what the seeder is told.

A gateway on loopback (a UDP socket the test drives) answers with what a broken or hostile
router could send: the wrong opcode, another port's mapping, truncated packets, a refusal, an
impossible port, silence. The real routers are in test_home_router.py (miniupnpd).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path

import bencodepy
import pytest

from client import reachability
from tests.peer.conftest import run
from tracker.peer.announcer import Announcer, AnnounceResponse, parse_response
from tracker.peer.portmap import Mapping, MappingRefused, PortMapError, PortMapper, natpmp
from tracker.peer.portmap.natpmp import NatPmpClient, default_gateway

Answer = Callable[[bytes], list[bytes]]


class Gateway(asyncio.DatagramProtocol):
    """Answers each request with what `answer` returns; counts the requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.requests.append(data)
        assert self.transport is not None
        for packet in self.answer(data):
            self.transport.sendto(packet, addr)


async def gateway(answer: Answer) -> tuple[Gateway, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Gateway(answer), local_addr=("127.0.0.1", 0)
    )
    return protocol, transport.get_extra_info("sockname")[1]


def map_answer(
    request: bytes, *, result: int = 0, external: int | None = None, opcode: int | None = None
) -> bytes:
    """A NAT-PMP mapping answer to `request` (RFC 6886 3.3), with any field overridden."""
    _, op, _, internal, suggested, lifetime = struct.unpack(">BBHHHI", request)
    return struct.pack(
        ">BBHIHHI",
        0,
        128 + (op if opcode is None else opcode),
        result,
        1,
        internal,
        suggested if external is None else external,
        lifetime,
    )


def test_natpmp_skips_answers_about_another_opcode_port_or_truncated_and_takes_the_matching_one():
    def answer(request: bytes) -> list[bytes]:
        right = map_answer(request, external=40000)
        other_port = bytearray(right)
        other_port[8:10] = struct.pack(">H", 9999)
        return [map_answer(request, opcode=1 if request[1] == 2 else 2), bytes(other_port), right[:10], right]

    async def scenario() -> natpmp.NatPmpMapping:
        _, port = await gateway(answer)
        async with NatPmpClient("127.0.0.1", port=port) as client:
            return await client.map("TCP", 6881, 6881, 7200)

    granted = run(scenario())
    assert (granted.protocol, granted.internal_port, granted.external_port, granted.lifetime) == (
        "TCP",
        6881,
        40000,
        7200,
    )


def test_natpmp_refusal_is_reported_as_refused():
    async def scenario() -> None:
        _, port = await gateway(lambda request: [map_answer(request, result=2)])
        async with NatPmpClient("127.0.0.1", port=port) as client:
            await client.map("UDP", 6881, 6881, 7200)

    with pytest.raises(MappingRefused, match="refused"):
        run(scenario())


def test_natpmp_rejects_a_granted_port_zero():
    async def scenario() -> None:
        _, port = await gateway(lambda request: [map_answer(request, external=0)])
        async with NatPmpClient("127.0.0.1", port=port) as client:
            await client.map("TCP", 6881, 0, 7200)

    with pytest.raises(PortMapError, match="impossible external port"):
        run(scenario())


def test_natpmp_retries_a_silent_gateway_then_gives_up():
    async def scenario() -> Gateway:
        silent, port = await gateway(lambda request: [])
        async with NatPmpClient("127.0.0.1", port=port) as client:
            with pytest.raises(PortMapError, match="did not answer"):
                await client.map("TCP", 6881, 6881, 7200)
        return silent

    silent = run(scenario())
    assert len(silent.requests) == natpmp.ATTEMPTS


def test_natpmp_to_a_port_nobody_serves_fails_without_waiting_out_the_retries():
    async def scenario() -> None:
        closed, port = await gateway(lambda request: [])
        assert closed.transport is not None
        closed.transport.close()  # the port is now closed: the kernel answers ICMP port unreachable
        async with NatPmpClient("127.0.0.1", port=port) as client:
            await client.map("TCP", 6881, 6881, 7200)

    with pytest.raises(PortMapError, match="does not answer NAT-PMP"):
        run(scenario())


@pytest.mark.parametrize(
    ("protocol", "internal", "external", "lifetime"),
    [("SCTP", 6881, 6881, 60), ("TCP", 0, 6881, 60), ("TCP", 6881, 65536, 60), ("UDP", 6881, 6881, -1)],
)
def test_natpmp_refuses_to_ask_for_an_impossible_mapping(protocol, internal, external, lifetime):
    async def scenario() -> None:
        async with NatPmpClient("127.0.0.1", port=9) as client:
            await client.map(protocol, internal, external, lifetime)

    with pytest.raises(ValueError, match=r"cannot map|lifetime"):
        run(scenario())


def test_the_default_gateway_is_read_from_the_route_table(tmp_path: Path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth0\t00000000\t014DA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    assert default_gateway(table) == "192.168.77.1"
    table.write_text("Iface\tDestination\tGateway\n")
    assert default_gateway(table) is None
    assert default_gateway(tmp_path / "missing") is None


def test_the_announce_answer_carries_the_trackers_connectability_verdict_and_warning():
    def answer(**fields: object) -> AnnounceResponse:
        return parse_response(bencodepy.encode({b"interval": 60, b"peers": b"", **fields}))

    told = answer(sm_connectable=0, **{"warning message": b"forward TCP and UDP port 6881"})
    assert (told.connectable, told.warning) == (False, "forward TCP and UDP port 6881")
    assert answer(sm_connectable=1).connectable is True
    assert answer().connectable is None and answer().warning is None
    assert answer(sm_connectable=7).connectable is None  # not a verdict
    assert answer(**{"warning message": 5}).warning is None
    assert len(answer(**{"warning message": b"x" * 10_000}).warning or "") <= 500


class _Told:
    """An announcer's last word, as client.reachability reads it."""

    def __init__(self, connectable: bool | None, warning: str | None = None) -> None:
        self.connectable = connectable
        self.warning = warning


def _mapper(mapping: Mapping | None, error: PortMapError | None = None) -> PortMapper:
    mapper = PortMapper(6881)
    mapper.mapping, mapper.error = mapping, error
    return mapper


def _describe(mapper: PortMapper | None, *verdicts: _Told) -> str:
    announcers: list[Announcer] = list(verdicts)  # type: ignore[arg-type]
    return reachability.describe(6881, mapper, announcers)


def test_the_seeder_is_told_whether_it_is_reachable_and_what_to_do_if_not():
    upnp = Mapping("UPnP", 6881, 40000, "203.0.113.9", 3600)
    assert _describe(_mapper(upnp), _Told(True)) == (
        "reachable: the tracker connected to this seeder through the router's port 40000 (UPnP)"
    )
    refused = _describe(_mapper(None, MappingRefused("the router said no")), _Told(False, "cannot connect"))
    assert refused.startswith("not reachable") and "(the tracker says: cannot connect)" in refused
    assert "allow UPnP or NAT-PMP mappings" in refused and "port 6881" in refused
    assert "--map-port" in _describe(None, _Told(False))
    assert "firewall" in _describe(_mapper(upnp), _Told(False))  # mapped, yet nobody got through
    assert "waiting for the tracker" in _describe(_mapper(upnp), _Told(None))
    assert _describe(_mapper(None, PortMapError("no gateway")), _Told(None)).startswith(
        "perhaps not reachable"
    )
