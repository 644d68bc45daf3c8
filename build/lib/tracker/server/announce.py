"""Announce and scrape requests (BEP 3, BEP 23, BEP 48): strict parsing of the query string into
typed values. Anything out of spec raises `RequestError`, whose message is the `failure reason`
sent back. Parameters this tracker does not use (`key`, `supportcrypto`, `ip`, ...) are ignored:
the announcing address always comes from the connection."""

from __future__ import annotations

from typing import NamedTuple

from tracker.errors import TrackerError

PASSKEY_LENGTH = 32
INFO_HASH_LENGTH = 20
PEER_ID_LENGTH = 20
DEFAULT_NUMWANT = 50
MAX_NUMWANT = 200
MAX_SCRAPE_HASHES = 64
MAX_COUNTER = (1 << 63) - 1  # byte counters: unsigned, and what a 64-bit client can send
MAX_PORT = 65535

# Events as small ints; NONE is the regular re-announce. BEP 21's `paused` counts as regular.
NONE, STARTED, COMPLETED, STOPPED, PAUSED = 0, 1, 2, 3, 4
_EVENTS = {b"": NONE, b"started": STARTED, b"completed": COMPLETED, b"stopped": STOPPED, b"paused": PAUSED}

_HEX = b"0123456789abcdef"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_ESCAPED = {
    f"{high}{low}".encode(): bytes([int(high + low, 16)]) for high in _HEX_DIGITS for low in _HEX_DIGITS
}
_ANNOUNCE_FIELDS = frozenset(
    (b"info_hash", b"peer_id", b"port", b"uploaded", b"downloaded", b"left", b"event", b"numwant", b"compact")
)


class RequestError(TrackerError):
    """A request the tracker refuses; the message is the `failure reason` the client sees."""


class AnnounceRequest(NamedTuple):
    """A validated announce."""

    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: int
    numwant: int


def announce_url(base: str, passkey: str) -> str:
    """A personal announce URL, `<base>/<passkey>/announce`: the private trackers' form, whose
    last path segment starts with "announce" so that clients can derive the scrape URL."""
    return f"{base.rstrip('/')}/{passkey}/announce"


def scrape_url(base: str, passkey: str) -> str:
    """The scrape URL that belongs to `announce_url(base, passkey)` (BEP 48)."""
    return f"{base.rstrip('/')}/{passkey}/scrape"


def parse_passkey(segment: bytes) -> str:
    """The passkey path segment: 32 lowercase hex characters."""
    if len(segment) != PASSKEY_LENGTH or segment.translate(None, _HEX):
        raise RequestError("malformed passkey; download the torrent again from the store")
    return segment.decode("ascii")


def _binary(value: bytes, name: str, length: int) -> bytes:
    if b"%" in value:
        # Strict percent-decoding: every % must start two hex digits (urllib lets "%zz" through).
        first, *escaped = value.split(b"%")
        try:
            value = first + b"".join([_ESCAPED[part[:2]] + part[2:] for part in escaped])
        except KeyError:
            raise RequestError(f"{name} has a malformed percent escape") from None
    if len(value) != length:
        raise RequestError(f"{name} must be exactly {length} bytes")
    return value


def _uint(value: bytes | None, name: str, maximum: int) -> int:
    if value is None:
        raise RequestError(f"missing {name}")
    if not value.isdigit() or len(value) > 19:
        raise RequestError(f"{name} must be an unsigned decimal integer")
    number = int(value)
    if number > maximum:
        raise RequestError(f"{name} is out of range")
    return number


def parse_announce(query: bytes) -> AnnounceRequest:
    """Parse an announce query string (the part after `?`)."""
    fields: dict[bytes, bytes] = {}
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name in _ANNOUNCE_FIELDS:
            if name in fields:
                raise RequestError(f"repeated parameter {name.decode()}")
            fields[name] = value
    info_hash = fields.get(b"info_hash")
    peer_id = fields.get(b"peer_id")
    if info_hash is None:
        raise RequestError("missing info_hash")
    if peer_id is None:
        raise RequestError("missing peer_id")
    port = _uint(fields.get(b"port"), "port", MAX_PORT)
    if port == 0:
        raise RequestError("port must be 1..65535")
    event = _EVENTS.get(fields.get(b"event", b""))
    if event is None:
        raise RequestError("event must be started, completed, stopped or empty")
    numwant = fields.get(b"numwant")
    compact = fields.get(b"compact")
    if compact is not None and compact not in (b"0", b"1"):
        raise RequestError("compact must be 0 or 1")
    return AnnounceRequest(
        _binary(info_hash, "info_hash", INFO_HASH_LENGTH),
        _binary(peer_id, "peer_id", PEER_ID_LENGTH),
        port,
        _uint(fields.get(b"uploaded"), "uploaded", MAX_COUNTER),
        _uint(fields.get(b"downloaded"), "downloaded", MAX_COUNTER),
        _uint(fields.get(b"left"), "left", MAX_COUNTER),
        event,
        DEFAULT_NUMWANT if numwant is None else min(_uint(numwant, "numwant", MAX_COUNTER), MAX_NUMWANT),
    )


def parse_scrape(query: bytes) -> list[bytes]:
    """The distinct infohashes a scrape asks for, in order (1..MAX_SCRAPE_HASHES)."""
    hashes: list[bytes] = []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"info_hash":
            info_hash = _binary(value, "info_hash", INFO_HASH_LENGTH)
            if info_hash not in hashes:
                hashes.append(info_hash)
                if len(hashes) > MAX_SCRAPE_HASHES:
                    raise RequestError(f"at most {MAX_SCRAPE_HASHES} info_hash values per scrape")
    if not hashes:
        raise RequestError("scrape needs info_hash; this private tracker has no full scrape")
    return hashes
