"""The store's HTTP API as the client sees it: sign in with Ethereum, then read and fetch.

Every failure becomes a `ClientError` with one sentence saying what went wrong, so the CLI and
the seller's script can show it as is.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from client.errors import ClientError

SIGN_IN_STATEMENT = "Sign in to seedmarket."
SIGN_IN_LIFETIME = timedelta(hours=1)
DEFAULT_TIMEOUT = 30.0

# Signs an EIP-191 personal message and returns the 65-byte signature.
MessageSigner = Callable[[str], bytes]


class StoreClient:
    """A session with one store."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, follow_redirects=False)
        self.address: str | None = None
        self._signer: tuple[str, MessageSigner] | None = None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----- transport -----

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._send(method, path, **kwargs)
        if response.status_code == 401 and self._signer is not None and not path.startswith("/auth/"):
            # The session expired (a long-running seeder outlives it): sign in again, once.
            address, sign = self._signer
            self.sign_in(address, sign)
            response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise ClientError(f"the store refused {method} {path}: {_detail(response)}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"the store answered {method} {path} with something that is not JSON") from None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the store at {self.base_url} ({exc}); is it running?") from None

    # ----- sign-in -----

    def sign_in(self, address: str, sign: MessageSigner) -> None:
        """Sign in with an EIP-4361 message that `sign` signs for `address`."""
        # siwe builds its ABNF grammars when imported (seconds of CPU): only the commands that sign
        # in pay for it, not every start of `seedmarket`.
        from siwe import SiweMessage  # noqa: PLC0415
        from siwe.siwe import ISO8601Datetime  # noqa: PLC0415

        offer = self._json("POST", "/auth/nonce")
        issued = datetime.now(UTC)
        message = SiweMessage(
            domain=offer["domain"],
            address=address,
            statement=SIGN_IN_STATEMENT,
            uri=offer["uri"],
            version="1",
            chain_id=int(offer["chainId"]),
            nonce=offer["nonce"],
            issued_at=ISO8601Datetime.from_datetime(issued),
            expiration_time=ISO8601Datetime.from_datetime(issued + SIGN_IN_LIFETIME),
        ).prepare_message()
        signature = "0x" + sign(message).hex()
        session = self._json("POST", "/auth/session", json={"message": message, "signature": signature})
        self._http.headers["Authorization"] = f"Bearer {session['token']}"
        self.address = session["address"]
        self._signer = (address, sign)

    # ----- catalog -----

    def health(self) -> dict[str, Any]:
        """The store's own health and chain facts (chain id, contract)."""
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    def products(self) -> list[dict[str, Any]]:
        """Every product in the catalog."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._json("GET", "/products", params={"offset": offset, "limit": 100})
            items.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page.get("total", offset):
                return items

    def product(self, product_id: int) -> dict[str, Any]:
        """One product, with its listing and terms."""
        try:
            result: dict[str, Any] = self._json("GET", f"/products/{product_id}")
        except ClientError as exc:
            if "(HTTP 404)" in str(exc):  # the store's "not found", said as the user would ask it
                missing = f"there is no product {product_id} in the store at {self.base_url}"
                raise ClientError(missing) from None
            raise
        return result

    def swarm_health(self, product_id: int) -> dict[str, Any]:
        """Seeders, leechers and completed downloads of a product's swarm."""
        result: dict[str, Any] = self._json("GET", f"/products/{product_id}/health")
        return result

    def sales(self, seller: str) -> dict[str, Any]:
        """A seller's products and sales per token."""
        result: dict[str, Any] = self._json("GET", f"/sellers/{seller}/sales")
        return result

    # ----- signed-in -----

    def register_listing(
        self, product_id: int, title: str, description: str, torrent: bytes
    ) -> dict[str, Any]:
        """Register a listed product's title, description and torrent (as its seller)."""
        body = {"title": title, "description": description, "torrent": base64.b64encode(torrent).decode()}
        result: dict[str, Any] = self._json("PUT", f"/products/{product_id}/listing", json=body)
        return result

    def torrent(self, product_id: int) -> bytes:
        """The personal `.torrent` of a product this wallet may download."""
        return self._request("GET", f"/products/{product_id}/torrent").content

    def me(self) -> dict[str, Any]:
        """The signed-in wallet and its personal announce URL."""
        result: dict[str, Any] = self._json("GET", "/me")
        return result

    def purchases(self) -> list[dict[str, Any]]:
        """The signed-in wallet's purchases."""
        result: list[dict[str, Any]] = self._json("GET", "/me/purchases")
        return result

    # ----- rewards -----

    def rewards(self, account: str) -> dict[str, Any]:
        """An account's earnings per token."""
        result: dict[str, Any] = self._json("GET", f"/accounts/{account}/rewards")
        return result

    def proof(self, account: str, token: str) -> dict[str, Any]:
        """The leaf and Merkle proof to claim `token` for `account` in the active root."""
        result: dict[str, Any] = self._json("GET", f"/accounts/{account}/rewards/{token}/proof")
        return result


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"{detail} (HTTP {response.status_code})" if detail else f"HTTP {response.status_code}"
