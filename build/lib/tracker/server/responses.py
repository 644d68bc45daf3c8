"""Bencoded tracker answers, written by hand: they are few, fixed in shape, and on the hot path.
Dictionary keys appear in sorted order, as bencode requires."""

from __future__ import annotations

from collections.abc import Iterable


def failure(reason: str) -> bytes:
    """`{"failure reason": reason}`."""
    text = reason.encode("utf-8", "replace")
    return b"d14:failure reason%d:%se" % (len(text), text)


def unreachable_warning(port: int) -> str:
    """What a seeder nobody can connect to is told to do (BEP 3's `warning message`)."""
    return (
        f"seeding, but nobody can connect to you on port {port}: forward TCP and UDP port {port} on "
        "your router to this computer, or enable UPnP or NAT-PMP on the router, and allow the "
        "port in your firewall; until then you earn nothing for seeding"
    )


def announce(
    complete: int,
    incomplete: int,
    interval: int,
    min_interval: int,
    peers: bytes,
    peers6: bytes,
    connectable: bool | None = None,
    port: int = 0,
) -> bytes:
    """An announce answer with compact IPv4 (`peers`, BEP 23) and IPv6 (`peers6`, BEP 7) lists.

    With a connect-back verdict on a seeder (`tracker.server.reachability`) it also carries
    `sm_connectable` (1 or 0) and, when 0, a `warning message` naming `port`."""
    answer = b"d8:completei%de10:incompletei%de8:intervali%de12:min intervali%de5:peers%d:%s6:peers6%d:%s" % (
        complete,
        incomplete,
        interval,
        min_interval,
        len(peers),
        peers,
        len(peers6),
        peers6,
    )
    if connectable is None:
        return answer + b"e"
    if connectable:
        return answer + b"14:sm_connectablei1ee"
    warning = unreachable_warning(port).encode()
    return answer + b"14:sm_connectablei0e15:warning message%d:%se" % (len(warning), warning)


def scrape(files: Iterable[tuple[bytes, int, int, int, int | None]]) -> bytes:
    """A scrape answer (BEP 48) from (info_hash, complete, incomplete, downloaded, reachable)
    rows; `reachable`, the seeders a connect-back reached, is sent as `sm_reachable` when the
    tracker checks (it is None otherwise)."""
    parts = [b"d5:filesd"]
    for info_hash, complete, incomplete, downloaded, reachable in sorted(files, key=lambda row: row[0]):
        parts.append(
            b"20:%sd8:completei%de10:downloadedi%de10:incompletei%de"
            % (info_hash, complete, downloaded, incomplete)
        )
        parts.append(b"e" if reachable is None else b"12:sm_reachablei%dee" % reachable)
    parts.append(b"ee")
    return b"".join(parts)
