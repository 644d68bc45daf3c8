"""Download receipts: the EIP-712 `Receipt` and `ReceiptKey` of seedmarket, defined once.

A downloader signs `Receipt(purchaseId, seeder, bytes)`: the cumulative verified bytes of its
purchase's torrent that it received from `seeder`. It signs either with the buyer's own key or
with a short-lived session key that the buyer authorised by signing `ReceiptKey(purchaseId, key,
expires)`. Verification is the tracker's hot path, so structs are hashed here by hand and signers
recovered with libsecp256k1 (coincurve); eth-account's `encode_typed_data` is the independent
reference the tests compare against.

Addresses are 20-byte `bytes` inside this module (no checksumming on the hot path).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from coincurve import PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT

from tracker.addresses import to_hex_address
from tracker.errors import TrackerError
from tracker.hashing import keccak256

DOMAIN_NAME = "seedmarket"
DOMAIN_VERSION = "1"
EIP712_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
RECEIPT_TYPE = "Receipt(uint256 purchaseId,address seeder,uint64 bytes)"
RECEIPT_KEY_TYPE = "ReceiptKey(uint256 purchaseId,address key,uint64 expires)"

_DOMAIN_TYPEHASH = keccak256(EIP712_DOMAIN_TYPE.encode())
_RECEIPT_TYPEHASH = keccak256(RECEIPT_TYPE.encode())
_RECEIPT_KEY_TYPEHASH = keccak256(RECEIPT_KEY_TYPE.encode())

SIGNATURE_LENGTH = 65
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2
_MAX_UINT64 = (1 << 64) - 1
_MAX_UINT256 = (1 << 256) - 1
ZERO_ADDRESS = bytes(20)


class ReceiptError(TrackerError):
    """A receipt or key authorisation that is malformed, badly signed, or not acceptable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # short machine-readable cause, e.g. "bad-signature"


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: bytes) -> bytes:
    return b"\0" * 12 + address


def address_of(public_key: PublicKey) -> bytes:
    """The Ethereum address of a public key."""
    return keccak256(public_key.format(compressed=False)[1:])[-20:]


def parse_address(value: str | bytes) -> bytes:
    """A 20-byte address from raw bytes or a 0x-hex string; raises ReceiptError otherwise."""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) == 42:
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise ReceiptError("malformed", f"address {value!r} is not hex") from None
    else:
        raise ReceiptError("malformed", f"{value!r} is not a 20-byte address")
    if len(raw) != 20:
        raise ReceiptError("malformed", "an address is 20 bytes")
    return raw


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain: one chain, one Marketplace."""

    chain_id: int
    verifying_contract: bytes
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.verifying_contract) != 20 or not 0 < self.chain_id <= _MAX_UINT256:
            raise ReceiptError("malformed", "a domain needs a chain id and a 20-byte contract address")
        separator = keccak256(
            _DOMAIN_TYPEHASH
            + keccak256(DOMAIN_NAME.encode())
            + keccak256(DOMAIN_VERSION.encode())
            + _word(self.chain_id)
            + _address_word(self.verifying_contract)
        )
        object.__setattr__(self, "separator", separator)

    def digest(self, struct_hash: bytes) -> bytes:
        """The EIP-712 digest of a struct hash in this domain."""
        return keccak256(b"\x19\x01" + self.separator + struct_hash)

    def typed_data_domain(self) -> dict[str, Any]:
        """The domain as `eth_signTypedData_v4` (and eth-account) spell it."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_hex_address(self.verifying_contract),
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """`Receipt(uint256 purchaseId, address seeder, uint64 bytes)`."""

    purchase_id: int
    seeder: bytes
    byte_count: int

    def __post_init__(self) -> None:
        if not 0 < self.purchase_id <= _MAX_UINT256:
            raise ReceiptError("malformed", "purchase id must be a positive uint256")
        if len(self.seeder) != 20:
            raise ReceiptError("malformed", "seeder must be a 20-byte address")
        if not 0 <= self.byte_count <= _MAX_UINT64:
            raise ReceiptError("malformed", "bytes must be a uint64")

    def struct_hash(self) -> bytes:
        """hashStruct(Receipt)."""
        return keccak256(
            _RECEIPT_TYPEHASH + _word(self.purchase_id) + _address_word(self.seeder) + _word(self.byte_count)
        )

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        """Full EIP-712 typed data, for wallets and eth-account."""
        return {
            "types": {"EIP712Domain": _DOMAIN_FIELDS, "Receipt": _RECEIPT_FIELDS},
            "primaryType": "Receipt",
            "domain": domain.typed_data_domain(),
            "message": {
                "purchaseId": self.purchase_id,
                "seeder": to_hex_address(self.seeder),
                "bytes": self.byte_count,
            },
        }


@dataclass(frozen=True, slots=True)
class ReceiptKey:
    """`ReceiptKey(uint256 purchaseId, address key, uint64 expires)`: the buyer lets `key` sign."""

    purchase_id: int
    key: bytes
    expires: int

    def __post_init__(self) -> None:
        if not 0 < self.purchase_id <= _MAX_UINT256:
            raise ReceiptError("malformed", "purchase id must be a positive uint256")
        if len(self.key) != 20:
            raise ReceiptError("malformed", "key must be a 20-byte address")
        if not 0 <= self.expires <= _MAX_UINT64:
            raise ReceiptError("malformed", "expires must be a uint64")

    def struct_hash(self) -> bytes:
        """hashStruct(ReceiptKey)."""
        return keccak256(
            _RECEIPT_KEY_TYPEHASH + _word(self.purchase_id) + _address_word(self.key) + _word(self.expires)
        )

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        """Full EIP-712 typed data, for wallets (`eth_signTypedData_v4`) and eth-account."""
        return {
            "types": {"EIP712Domain": _DOMAIN_FIELDS, "ReceiptKey": _RECEIPT_KEY_FIELDS},
            "primaryType": "ReceiptKey",
            "domain": domain.typed_data_domain(),
            "message": {
                "purchaseId": self.purchase_id,
                "key": to_hex_address(self.key),
                "expires": self.expires,
            },
        }


_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_RECEIPT_FIELDS = [
    {"name": "purchaseId", "type": "uint256"},
    {"name": "seeder", "type": "address"},
    {"name": "bytes", "type": "uint64"},
]
_RECEIPT_KEY_FIELDS = [
    {"name": "purchaseId", "type": "uint256"},
    {"name": "key", "type": "address"},
    {"name": "expires", "type": "uint64"},
]


@dataclass(frozen=True, slots=True)
class SignedKey:
    """A `ReceiptKey` with the buyer's signature."""

    key: ReceiptKey
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A `Receipt` with its signature, and the key authorisation when a session key signed it."""

    receipt: Receipt
    signature: bytes
    delegation: SignedKey | None = None


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose signatures check out; `signer` is the account that stands behind it (the
    buyer's address when a session key signed). Whether `signer` really bought the purchase is
    for whoever knows purchases to decide."""

    signed: SignedReceipt
    signer: bytes

    @property
    def receipt(self) -> Receipt:
        """The receipt's fields."""
        return self.signed.receipt


# ----- signing -----


def sign_digest(digest: bytes, private_key: bytes) -> bytes:
    """A 65-byte `r || s || v` signature (v = 27 or 28, low s) of a 32-byte digest."""
    recoverable = PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return recoverable[:64] + bytes([27 + recoverable[64]])


def sign_receipt(domain: Domain, receipt: Receipt, private_key: bytes) -> bytes:
    """Sign a receipt with the buyer's or a session key's 32-byte private key."""
    return sign_digest(domain.digest(receipt.struct_hash()), private_key)


def sign_receipt_key(domain: Domain, key: ReceiptKey, private_key: bytes) -> bytes:
    """Sign a session-key authorisation with the buyer's 32-byte private key."""
    return sign_digest(domain.digest(key.struct_hash()), private_key)


# ----- verification -----


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The address that signed `digest`; refuses malformed and high-s (malleable) signatures."""
    if len(signature) != SIGNATURE_LENGTH:
        raise ReceiptError("bad-signature", f"a signature is {SIGNATURE_LENGTH} bytes")
    v = signature[64]
    if v not in (27, 28):
        raise ReceiptError("bad-signature", "signature v must be 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s <= _HALF_N):
        raise ReceiptError("bad-signature", "signature r or s out of range (high s is malleable)")
    # libsecp256k1 through coincurve's cffi binding, without its PublicKey wrapper: this is the
    # hot path of POST /receipts and the wrapper's objects cost about a tenth of the recovery.
    context = GLOBAL_CONTEXT.ctx
    recoverable = _ffi.new("secp256k1_ecdsa_recoverable_signature *")
    public_key = _ffi.new("secp256k1_pubkey *")
    if not (
        _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(context, recoverable, signature, v - 27)
        and _lib.secp256k1_ecdsa_recover(context, public_key, recoverable, digest)
    ):
        raise ReceiptError("bad-signature", "signature does not recover to a key")
    serialized = _ffi.new("unsigned char[65]")
    length = _ffi.new("size_t *", 65)
    _lib.secp256k1_ec_pubkey_serialize(
        context, serialized, length, public_key, _lib.SECP256K1_EC_UNCOMPRESSED
    )
    return keccak256(_ffi.buffer(serialized, 65)[1:])[-20:]


class ReceiptVerifier:
    """Checks receipts of one domain; remembers verified key authorisations (bounded)."""

    def __init__(self, domain: Domain, cache_size: int = 65_536) -> None:
        self.domain = domain
        self._cache_size = cache_size
        self._delegations: OrderedDict[tuple[ReceiptKey, bytes], bytes] = OrderedDict()

    def authoriser(self, signed_key: SignedKey) -> bytes:
        """The buyer address that signed a key authorisation (cached by content and signature)."""
        cache_key = (signed_key.key, signed_key.signature)
        buyer = self._delegations.get(cache_key)
        if buyer is None:
            buyer = recover_signer(self.domain.digest(signed_key.key.struct_hash()), signed_key.signature)
            self._delegations[cache_key] = buyer
            if len(self._delegations) > self._cache_size:
                self._delegations.popitem(last=False)
        return buyer

    def verify(self, signed: SignedReceipt, now: float | None = None) -> VerifiedReceipt:
        """Check signatures, the key's purchase and expiry, and that nobody signs for themselves."""
        receipt = signed.receipt
        signer = recover_signer(self.domain.digest(receipt.struct_hash()), signed.signature)
        delegation = signed.delegation
        if delegation is not None:
            key = delegation.key
            if key.key != signer:
                raise ReceiptError("wrong-signer", "the receipt is not signed by its session key")
            if key.purchase_id != receipt.purchase_id:
                raise ReceiptError("wrong-purchase", "the session key is authorised for another purchase")
            if key.expires < (time.time() if now is None else now):
                raise ReceiptError("expired-key", "the session key has expired")
            signer = self.authoriser(delegation)
        if signer == receipt.seeder or (delegation is not None and delegation.key.key == receipt.seeder):
            raise ReceiptError("self-receipt", "a buyer cannot sign a receipt to itself")
        return VerifiedReceipt(signed=signed, signer=signer)


# ----- message form (the sm_receipt wire message and POST /receipts share it) -----


def to_message(signed: SignedReceipt) -> dict[str, Any]:
    """The bencodable dict of docs/ARCHITECTURE.md: addresses and signatures as raw bytes."""
    message: dict[str, Any] = {
        "t": "receipt",
        "purchase": signed.receipt.purchase_id,
        "seeder": signed.receipt.seeder,
        "bytes": signed.receipt.byte_count,
        "sig": signed.signature,
    }
    if signed.delegation is not None:
        message["key"] = {
            "key": signed.delegation.key.key,
            "expires": signed.delegation.key.expires,
            "sig": signed.delegation.signature,
        }
    return message


def to_json(signed: SignedReceipt) -> dict[str, Any]:
    """The same message for humans: 0x-hex for addresses and signatures."""
    message = to_message(signed)
    message["seeder"] = to_hex_address(signed.receipt.seeder)
    message["sig"] = "0x" + signed.signature.hex()
    if signed.delegation is not None:
        message["key"] = {
            "key": to_hex_address(signed.delegation.key.key),
            "expires": signed.delegation.key.expires,
            "sig": "0x" + signed.delegation.signature.hex(),
        }
    return message


def _field(message: dict[Any, Any], name: str, kind: type) -> Any:
    value = message.get(name, message.get(name.encode()))
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReceiptError("malformed", f"receipt field {name!r} must be {kind.__name__}")
    return value


def _blob(message: dict[Any, Any], name: str, length: int) -> bytes:
    value = message.get(name, message.get(name.encode()))
    if isinstance(value, str):
        if value[:2] not in ("0x", "0X"):
            raise ReceiptError("malformed", f"receipt field {name!r} must be 0x-hex")
        try:
            value = bytes.fromhex(value[2:])
        except ValueError:
            raise ReceiptError("malformed", f"receipt field {name!r} is not hex") from None
    if not isinstance(value, bytes) or len(value) != length:
        raise ReceiptError("malformed", f"receipt field {name!r} must be {length} bytes")
    return value


def from_message(message: Any) -> SignedReceipt:
    """Parse a receipt message (bencoded form with bytes, or JSON form with 0x-hex)."""
    if not isinstance(message, dict):
        raise ReceiptError("malformed", "a receipt is a dictionary")
    receipt = Receipt(
        purchase_id=_field(message, "purchase", int),
        seeder=_blob(message, "seeder", 20),
        byte_count=_field(message, "bytes", int),
    )
    signature = _blob(message, "sig", SIGNATURE_LENGTH)
    raw_key = message.get("key", message.get(b"key"))
    delegation = None
    if raw_key is not None:
        if not isinstance(raw_key, dict):
            raise ReceiptError("malformed", "receipt field 'key' must be a dictionary")
        delegation = SignedKey(
            key=ReceiptKey(
                purchase_id=receipt.purchase_id,
                key=_blob(raw_key, "key", 20),
                expires=_field(raw_key, "expires", int),
            ),
            signature=_blob(raw_key, "sig", SIGNATURE_LENGTH),
        )
    return SignedReceipt(receipt=receipt, signature=signature, delegation=delegation)
