"""Address formatting: 20-byte addresses as lowercase 0x-hex (what the store keeps and compares)
and as EIP-55 checksummed 0x-hex (what it shows and publishes). Parsing an address off the wire is
`tracker.receipts.parse_address`, which reports a malformed one as a receipt error."""

from __future__ import annotations

from tracker.hashing import keccak256


def to_hex_address(address: bytes) -> str:
    """0x-prefixed lowercase hex of a 20-byte address."""
    return "0x" + address.hex()


_HEX_LENGTH = 40
_ONES = int.from_bytes(b"\x01" * _HEX_LENGTH, "big")
_ZEROS = int.from_bytes(b"0" * _HEX_LENGTH, "big")
_NIBBLE_ONES = int("1" * _HEX_LENGTH, 16)


def checksum(address: str) -> str:
    """EIP-55 checksum of a 0x-hex address, on whole-string integer arithmetic (the hot path
    of building leaves: eth-utils' per-character version costs seconds per 100,000 leaves).

    A character is upper-cased when it is a letter (bit 0x40 set: a-f, not 0-9) and the matching
    nibble of keccak256(lowercase hex) is 8 or more; upper-casing subtracts 0x20 from that byte.
    """
    text = address[2:].lower().encode()
    value = int.from_bytes(text, "big")
    high_nibbles = (int.from_bytes(keccak256(text)[:20], "big") >> 3) & _NIBBLE_ONES
    flags = int.from_bytes(f"{high_nibbles:040x}".encode(), "big") - _ZEROS  # one 0/1 per byte
    letters = (value >> 6) & _ONES
    return "0x" + (value - (flags & letters) * 0x20).to_bytes(_HEX_LENGTH, "big").decode()
