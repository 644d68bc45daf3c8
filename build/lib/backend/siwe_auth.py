"""Sign-In with Ethereum (EIP-4361): server-side single-use nonces and expiring sessions.

The `siwe` library parses the message and checks the signature, but it compares the domain and
nonce only when they are passed to it, and never looks at the chain id or the URI; so every field
that binds the message to this store (domain, URI, chain id, version, validity window) is checked
here first, and the nonce is consumed last, atomically, so that a message that fails any check
does not burn it. Sessions are random bearer tokens, stored only as their SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from siwe import SiweMessage, VerificationError
from sqlalchemy import delete, select

from backend.db import Database
from backend.errors import AuthError
from backend.models import AuthNonce, AuthSession
from backend.settings import Settings

log = logging.getLogger(__name__)

CLOCK_SKEW = 60  # seconds a client's clock may run ahead of ours
MAX_MESSAGE_LENGTH = 4096
SIGNATURE_HEX_LENGTH = 2 + 2 * 65


@dataclass(frozen=True)
class Session:
    """A signed-in wallet."""

    token: str
    address: str  # lowercase 0x-hex
    expires_at: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class SiweAuth:
    """Issues nonces, turns signed messages into sessions, and resolves session tokens."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.domain = settings.siwe_expected_domain
        self.uri = settings.siwe_expected_uri
        self.chain_id = settings.chain_id
        self.nonce_lifetime = settings.nonce_lifetime
        self.session_lifetime = settings.session_lifetime
        self.clock = clock

    def issue_nonce(self) -> tuple[str, int]:
        """A fresh nonce and when it expires; expired ones are swept on the way."""
        now = int(self.clock())
        nonce = secrets.token_hex(16)
        expires = now + self.nonce_lifetime
        with self.db.writer() as session:
            session.execute(delete(AuthNonce).where(AuthNonce.expires_at <= now))
            session.add(AuthNonce(nonce=nonce, expires_at=expires))
        return nonce, expires

    def sign_in(self, message: str, signature: str) -> Session:
        """Check a signed message and open a session; AuthError says what was wrong."""
        parsed = self._parse(message)
        now = self.clock()
        self._check_binding(parsed, now)
        self._check_signature(parsed, message, signature, now)
        address = parsed.address.lower()
        with self.db.writer() as session:
            used = session.execute(
                delete(AuthNonce).where(AuthNonce.nonce == parsed.nonce, AuthNonce.expires_at > int(now))
            )
            if used.rowcount != 1:  # type: ignore[attr-defined]
                raise AuthError("unknown, expired or already used nonce; ask for a new one")
            token = secrets.token_urlsafe(32)
            expires = int(now) + self.session_lifetime
            expiration = _when(parsed.expiration_time)
            if expiration is not None:
                expires = min(expires, int(expiration.timestamp()))
            session.execute(delete(AuthSession).where(AuthSession.expires_at <= int(now)))
            session.add(
                AuthSession(token_hash=_hash(token), address=address, created_at=int(now), expires_at=expires)
            )
        log.info("signed in: %s", address)
        return Session(token, address, expires)

    def resolve(self, token: str) -> Session | None:
        """The live session of a bearer token, or None."""
        if not token or len(token) > 128:
            return None
        with self.db.reader() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.token_hash == _hash(token)))
        if row is None or row.expires_at <= self.clock():
            return None
        return Session(token, row.address, row.expires_at)

    def sign_out(self, token: str) -> None:
        """End a session (unknown tokens are ignored)."""
        with self.db.writer() as session:
            session.execute(delete(AuthSession).where(AuthSession.token_hash == _hash(token)))

    # ----- checks -----

    def _parse(self, message: str) -> SiweMessage:
        if len(message) > MAX_MESSAGE_LENGTH:
            raise AuthError("sign-in message too long")
        try:
            parsed = SiweMessage.from_message(message)
        except Exception:  # the parser raises ValueError, pydantic and abnf errors alike
            raise AuthError("not an EIP-4361 sign-in message") from None
        if parsed.prepare_message() != message:
            raise AuthError("sign-in message is not in the canonical EIP-4361 form")
        return parsed

    def _check_binding(self, parsed: SiweMessage, now: float) -> None:
        if parsed.domain != self.domain:
            raise AuthError(f"sign-in message is for domain {parsed.domain!r}, not {self.domain!r}")
        if parsed.scheme is not None and parsed.scheme != urlsplit(self.uri).scheme:
            raise AuthError(f"sign-in message is for scheme {parsed.scheme!r}")
        if str(parsed.uri) != self.uri:
            raise AuthError(f"sign-in message is for URI {parsed.uri!r}, not {self.uri!r}")
        if parsed.chain_id != self.chain_id:
            raise AuthError(f"sign-in message is for chain {parsed.chain_id}, not {self.chain_id}")
        issued = _when(parsed.issued_at)
        expiration = _when(parsed.expiration_time)
        not_before = _when(parsed.not_before)
        if issued is None or issued.timestamp() > now + CLOCK_SKEW:
            raise AuthError("sign-in message is issued in the future")
        if expiration is not None and expiration.timestamp() <= now:
            raise AuthError("sign-in message has expired")
        if not_before is not None and not_before.timestamp() > now + CLOCK_SKEW:
            raise AuthError("sign-in message is not valid yet")

    def _check_signature(self, parsed: SiweMessage, message: str, signature: str, now: float) -> None:
        if not (
            isinstance(signature, str)
            and len(signature) == SIGNATURE_HEX_LENGTH
            and signature.startswith("0x")
            and all(c in "0123456789abcdefABCDEF" for c in signature[2:])
        ):
            raise AuthError("signature must be 65 bytes of 0x-hex")
        try:
            parsed.verify(
                signature,
                domain=self.domain,
                nonce=parsed.nonce,
                timestamp=datetime.fromtimestamp(now, tz=UTC),
            )
        except VerificationError:
            raise AuthError("bad signature for this sign-in message") from None
        except Exception:  # eth-account raises assorted errors on garbage signatures
            raise AuthError("bad signature for this sign-in message") from None
