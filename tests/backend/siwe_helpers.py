"""Building and signing EIP-4361 messages the way a wallet would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from siwe import SiweMessage
from siwe.siwe import ISO8601Datetime

from tests.backend.helpers import key


def siwe_message(
    address: str,
    nonce: str,
    *,
    domain: str = "127.0.0.1:8000",
    uri: str = "http://127.0.0.1:8000",
    chain_id: int = 31337,
    issued: datetime | None = None,
    expires_in: timedelta | None = timedelta(minutes=10),
) -> str:
    """The canonical text of a sign-in message."""
    issued = issued or datetime.now(UTC)
    message = SiweMessage(
        domain=domain,
        address=address,
        statement="Sign in to seedmarket.",
        uri=uri,
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=ISO8601Datetime.from_datetime(issued),
        expiration_time=ISO8601Datetime.from_datetime(issued + expires_in) if expires_in else None,
    )
    return message.prepare_message()


def sign_text(text: str, key_index: int) -> str:
    """An EIP-191 personal signature by development account `key_index`, 0x-hex."""
    signed = Account.sign_message(encode_defunct(text=text), private_key=key(key_index))
    return "0x" + bytes(signed.signature).hex()


def address_of(key_index: int) -> str:
    """The checksummed address of development account `key_index`."""
    return str(Account.from_key(key(key_index)).address)
