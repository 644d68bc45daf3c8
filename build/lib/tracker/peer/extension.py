"""BEP 10 extension protocol and seedmarket's `sm_receipt` extension (docs/ARCHITECTURE.md, "Peer wire").

In the extension handshake a seeder adds `sm_wallet` (its 20-byte payout address) and a leecher
`sm_purchase` (its purchase id). `sm_receipt` messages are bencoded dicts: a leecher's receipt
(`tracker.receipts.to_message`) or a seeder's `{"t": "need", "bytes": n}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bencodepy

from tracker.bencode_scan import BencodeError, value_end
from tracker.peer.errors import ProtocolError
from tracker.receipts import ReceiptError, SignedReceipt, from_message, to_message

EXTENSION_NAME = b"sm_receipt"
HANDSHAKE_ID = 0
LOCAL_RECEIPT_ID = 1  # the id peers use to send us sm_receipt messages
CLIENT_NAME = "seedmarket 0.1"
MAX_EXTENSION_ID = 255
_MAX_UINT64 = (1 << 64) - 1
_MAX_UINT256 = (1 << 256) - 1


@dataclass(frozen=True, slots=True)
class ExtensionHandshake:
    """What a peer said in its BEP 10 handshake that we use."""

    receipt_id: int  # the peer's id for sm_receipt; 0 when it does not speak it
    wallet: bytes | None = None
    purchase: int | None = None
    client: str | None = None
    request_queue: int | None = None


@dataclass(frozen=True, slots=True)
class Need:
    """A seeder asks for a receipt covering `byte_count` bytes."""

    byte_count: int


def decode_dict(payload: bytes | memoryview) -> dict[bytes, Any]:
    """Strictly decode one bencoded dictionary that fills the whole payload."""
    data = bytes(payload)
    try:
        if not data or data[0] != 0x64 or value_end(data, 0) != len(data):
            raise ProtocolError("extension message is not exactly one bencoded dictionary")
        decoded = bencodepy.decode(data)
    except (BencodeError, bencodepy.BencodeDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"malformed bencoding in an extension message: {exc}") from None
    if not isinstance(decoded, dict):
        raise ProtocolError("extension message is not a dictionary")
    return decoded


def encode_handshake(*, wallet: bytes | None, purchase: int | None, request_queue: int) -> bytes:
    """Our extension handshake payload."""
    message: dict[str, Any] = {
        "m": {EXTENSION_NAME.decode(): LOCAL_RECEIPT_ID},
        "v": CLIENT_NAME,
        "reqq": request_queue,
    }
    if wallet is not None:
        message["sm_wallet"] = wallet
    if purchase is not None:
        message["sm_purchase"] = purchase
    return bytes(bencodepy.encode(message))


def _int_field(message: dict[bytes, Any], key: bytes, maximum: int) -> int | None:
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ProtocolError(f"extension handshake field {key.decode()} is not an integer in range")
    return value


def decode_handshake(payload: bytes | memoryview) -> ExtensionHandshake:
    """Parse a peer's extension handshake; raises ProtocolError when it is malformed."""
    message = decode_dict(payload)
    mapping = message.get(b"m", {})
    if not isinstance(mapping, dict):
        raise ProtocolError("extension handshake 'm' is not a dictionary")
    receipt_id = mapping.get(EXTENSION_NAME, 0)
    if (
        not isinstance(receipt_id, int)
        or isinstance(receipt_id, bool)
        or not 0 <= receipt_id <= MAX_EXTENSION_ID
    ):
        raise ProtocolError("extension handshake gives sm_receipt an invalid id")
    wallet = message.get(b"sm_wallet")
    if wallet is not None and (not isinstance(wallet, bytes) or len(wallet) != 20):
        raise ProtocolError("sm_wallet must be a 20-byte address")
    purchase = _int_field(message, b"sm_purchase", _MAX_UINT256)
    if purchase == 0:
        raise ProtocolError("sm_purchase must be a positive purchase id")
    client = message.get(b"v")
    return ExtensionHandshake(
        receipt_id=receipt_id,
        wallet=wallet if receipt_id else None,
        purchase=purchase if receipt_id else None,
        client=client.decode("utf-8", "replace")[:64] if isinstance(client, bytes) else None,
        request_queue=_int_field(message, b"reqq", _MAX_UINT64),
    )


def encode_need(byte_count: int) -> bytes:
    """A seeder's request for a receipt up to `byte_count`."""
    return bytes(bencodepy.encode({"t": "need", "bytes": byte_count}))


def encode_receipt(signed: SignedReceipt) -> bytes:
    """A leecher's receipt message (the shared message form of `tracker.receipts`)."""
    return bytes(bencodepy.encode(to_message(signed)))


def decode_message(payload: bytes | memoryview) -> SignedReceipt | Need | None:
    """Parse an sm_receipt message; None for a kind we do not know (ignored, for later versions)."""
    message = decode_dict(payload)
    kind = message.get(b"t")
    if kind == b"receipt":
        try:
            return from_message(message)
        except ReceiptError as exc:
            raise ProtocolError(f"malformed receipt: {exc}") from None
    if kind == b"need":
        count = _int_field(message, b"bytes", _MAX_UINT64)
        if count is None:
            raise ProtocolError("need message without 'bytes'")
        return Need(count)
    return None
