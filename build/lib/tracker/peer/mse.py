"""Message Stream Encryption (MSE, also "Protocol Encryption"), the side that accepts connections.

Transmission with its default settings ("prefer encryption") opens every connection with an MSE
handshake, and libtorrent can be told to. MSE is obfuscation, not security: a Diffie-Hellman
exchange (768-bit group, generator 2) gives both sides a secret S; the torrent's info hash is the
shared key SKEY, so only a peer that knows the torrent can talk, and it is found without being
sent in clear; then either side encrypts with RC4 (keys from S and SKEY, first 1024 bytes of
key stream dropped) or, when both allow it, the stream goes on in plaintext.

The exchange, as the connecting side (A) and we (B) see it:

    A -> B  Ya, PadA
    B -> A  Yb, PadB
    A -> B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
            ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    B -> A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the stream

HASH is SHA-1; VC is eight zero bytes; pads are 0 to 512 random bytes; IA is A's first payload
(its BitTorrent handshake). We select plaintext when A offers it (the payload is public data
whose integrity the piece hashes guard; RC4 would only cost CPU) and RC4 otherwise.

`MseResponder` is a pure state machine: feed it bytes as they arrive, send what it returns, and
once `done` hand its `payload` to the BitTorrent parser; afterwards `decryptor` and `encryptor`
(None for plaintext) transform the rest of the stream. Every length it reads is bounded; any
violation raises ProtocolError.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext

from tracker.peer.errors import ProtocolError

PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
GENERATOR = 2
KEY_BYTES = 96  # Ya and Yb: 768 bits, big-endian
PRIVATE_BITS = 160  # the specification's minimum for the private exponent
VC = bytes(8)
MAX_PAD = 512
MAX_IA = 16 * 1024  # the initial payload we accept; a BitTorrent handshake is 68 bytes
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
DISCARD = 1024  # RC4 key stream bytes both sides drop


def _hash(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts), usedforsecurity=False).digest()


def rc4(key: bytes) -> CipherContext:
    """An RC4 stream keyed with `key`, its first DISCARD bytes already spent."""
    context = Cipher(ARC4(key), mode=None).encryptor()
    context.update(bytes(DISCARD))
    return context


def looks_like_mse(first_byte: int) -> bool:
    """Whether a connection's first byte starts an MSE handshake: a plaintext BitTorrent
    handshake starts with 19, the length of "BitTorrent protocol"; Ya is random."""
    return first_byte != 19


class MseResponder:
    """The accepting side of one MSE handshake."""

    def __init__(self, info_hashes: Callable[[], Iterable[bytes]], *, allow_plaintext: bool = True) -> None:
        self._info_hashes = info_hashes
        self._allow_plaintext = allow_plaintext
        self._private = int.from_bytes(os.urandom(PRIVATE_BITS // 8), "big")
        self._buf = bytearray()
        self._step = self._read_ya
        self._secret = b""
        self._pad_c = 0
        self._ia = 0
        self._provide = 0
        self.info_hash: bytes | None = None  # SKEY, once found
        self.decryptor: CipherContext | None = None  # A -> B, for the handshake and, with RC4, after
        self.encryptor: CipherContext | None = None  # B -> A
        self.rc4 = False  # RC4 was selected (else plaintext after the handshake)
        self.done = False
        self.payload = b""  # IA and whatever followed it, decrypted as selected

    def feed(self, data: bytes | memoryview) -> bytes:
        """Take bytes the peer sent; the bytes to send it back (possibly none)."""
        if self.done:
            raise ProtocolError("MSE handshake already finished")
        self._buf += data
        out = bytearray()
        while not self.done:
            reply = self._step()
            if reply is None:
                break
            out += reply
        return bytes(out)

    # Each step consumes what it needs from the buffer and returns bytes to send, or None when it
    # needs more input.

    def _read_ya(self) -> bytes | None:
        if len(self._buf) < KEY_BYTES:
            return None
        ya = int.from_bytes(self._buf[:KEY_BYTES], "big")
        del self._buf[:KEY_BYTES]
        if not 1 < ya < PRIME - 1:
            raise ProtocolError("MSE: the peer's public key is out of range")
        self._secret = pow(ya, self._private, PRIME).to_bytes(KEY_BYTES, "big")
        yb = pow(GENERATOR, self._private, PRIME).to_bytes(KEY_BYTES, "big")
        self._step = self._sync
        return yb + os.urandom(int.from_bytes(os.urandom(2), "big") % (MAX_PAD + 1))

    def _sync(self) -> bytes | None:
        """Skip PadA: find HASH('req1', S)."""
        marker = _hash(b"req1", self._secret)
        at = self._buf.find(marker)
        if at < 0:
            if len(self._buf) >= MAX_PAD + len(marker):
                raise ProtocolError("MSE: no req1 hash within the pad")
            return None
        if at > MAX_PAD:
            raise ProtocolError("MSE: pad longer than allowed")
        del self._buf[: at + len(marker)]
        self._step = self._read_skey
        return b""

    def _read_skey(self) -> bytes | None:
        if len(self._buf) < 20:
            return None
        obfuscated = bytes(self._buf[:20])
        del self._buf[:20]
        mask = _hash(b"req3", self._secret)
        wanted = bytes(a ^ b for a, b in zip(obfuscated, mask, strict=True))
        for info_hash in self._info_hashes():
            if _hash(b"req2", info_hash) == wanted:
                self.info_hash = info_hash
                break
        else:
            raise ProtocolError("MSE: handshake for a torrent we do not have")
        self.decryptor = rc4(_hash(b"keyA", self._secret, info_hash))
        self.encryptor = rc4(_hash(b"keyB", self._secret, info_hash))
        self._step = self._read_vc
        return b""

    def _decrypt(self, count: int) -> bytes:
        assert self.decryptor is not None
        plain = self.decryptor.update(bytes(self._buf[:count]))
        del self._buf[:count]
        return plain

    def _read_vc(self) -> bytes | None:
        if len(self._buf) < 14:
            return None
        plain = self._decrypt(14)
        if plain[:8] != VC:
            raise ProtocolError("MSE: wrong verification constant")
        self._provide = int.from_bytes(plain[8:12], "big")
        self._pad_c = int.from_bytes(plain[12:14], "big")
        if self._pad_c > MAX_PAD:
            raise ProtocolError("MSE: PadC longer than allowed")
        self._step = self._read_pad_c
        return b""

    def _read_pad_c(self) -> bytes | None:
        if len(self._buf) < self._pad_c + 2:
            return None
        plain = self._decrypt(self._pad_c + 2)
        self._ia = int.from_bytes(plain[-2:], "big")
        if self._ia > MAX_IA:
            raise ProtocolError("MSE: initial payload longer than allowed")
        self._step = self._read_ia
        return b""

    def _read_ia(self) -> bytes | None:
        if len(self._buf) < self._ia:
            return None
        initial = self._decrypt(self._ia)
        if self._allow_plaintext and self._provide & CRYPTO_PLAINTEXT:
            select = CRYPTO_PLAINTEXT
        elif self._provide & CRYPTO_RC4:
            select = CRYPTO_RC4
        else:
            raise ProtocolError("MSE: the peer offers no method we accept")
        assert self.encryptor is not None
        reply = self.encryptor.update(VC + select.to_bytes(4, "big") + bytes(2))
        rest = bytes(self._buf)
        self._buf.clear()
        self.rc4 = select == CRYPTO_RC4
        if self.rc4:
            rest = self._decrypt_rest(rest)
        else:
            self.decryptor = self.encryptor = None
        self.payload = initial + rest
        self.done = True
        return reply

    def _decrypt_rest(self, rest: bytes) -> bytes:
        assert self.decryptor is not None
        return self.decryptor.update(rest) if rest else b""
