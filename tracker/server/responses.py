"""Bencoded tracker answers, written by hand: they are few, fixed in shape, and on the hot path.
Dictionary keys appear in sorted order, as bencode requires."""

from __future__ import annotations

from collections.abc import Iterable


def failure(reason: str) -> bytes:
    """`{"failure reason": reason}`."""
    text = reason.encode("utf-8", "replace")
    return b"d14:failure reason%d:%se" % (len(text), text)


def announce(
    complete: int, incomplete: int, interval: int, min_interval: int, peers: bytes, peers6: bytes
) -> bytes:
    """An announce answer with compact IPv4 (`peers`, BEP 23) and IPv6 (`peers6`, BEP 7) lists."""
    return b"d8:completei%de10:incompletei%de8:intervali%de12:min intervali%de5:peers%d:%s6:peers6%d:%se" % (
        complete,
        incomplete,
        interval,
        min_interval,
        len(peers),
        peers,
        len(peers6),
        peers6,
    )


def scrape(files: Iterable[tuple[bytes, int, int, int]]) -> bytes:
    """A scrape answer (BEP 48) from (info_hash, complete, incomplete, downloaded) rows."""
    parts = [b"d5:filesd"]
    for info_hash, complete, incomplete, downloaded in sorted(files):
        parts.append(
            b"20:%sd8:completei%de10:downloadedi%de10:incompletei%dee"
            % (info_hash, complete, downloaded, incomplete)
        )
    parts.append(b"ee")
    return b"".join(parts)
