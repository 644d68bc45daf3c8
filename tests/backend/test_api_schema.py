"""schemathesis against the OpenAPI spec: no 5xx, and every answer matches the documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.main import create_app
from backend.services import Services
from backend.settings import load_settings
from dev.devnet import Anvil, Deployed
from tests.backend.api_helpers import listing_body, make_torrent, sign_in
from tests.backend.helpers import Market, key, signed_receipt
from tests.conftest import LONG

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
SIZE = 50_000


@pytest.fixture
def populated(
    anvil: Anvil, deployed: Deployed, market: Market, manifest: Path, sqlite_url: str, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A store with a registered product, a purchase, a receipt and a posted epoch; a buyer's session."""
    settings = load_settings(
        data_dir=tmp_path,
        database_url=sqlite_url,
        rpc_url=anvil.url,
        contract_address=deployed.address,
        deployment_block=deployed.block,
        manifest=manifest,
        confirmations=0,
        nonce_burst=100_000,  # every generated case signs in again; the limit has tests of its own
    )
    store = Services.open(settings)
    torrent, infohash = make_torrent(tmp_path / "content", SIZE)
    product_id, _ = market.list_product(market.accounts[1], size=SIZE, infohash=infohash)
    purchase = market.buy(market.accounts[2], product_id)
    store.indexer().sync()
    receipt = signed_receipt(market.domain, purchase, market.accounts[3], SIZE, key(2))
    store.sink().store_now([store.verifier().verify(receipt)])
    assert store.oracle().step(force=True).status == "posted"
    with TestClient(create_app(settings, services=store)) as client:
        client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=sign_in(client, 1))
        yield client, sign_in(client, 2)
    store.close()


@pytest.fixture
def api_schema(populated: tuple[TestClient, dict[str, str]]) -> schemathesis.BaseSchema:
    client, _ = populated
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=60 if LONG else 15,
        database="none",
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_the_api_answers_every_generated_request_within_its_spec(
    case: schemathesis.Case, populated: tuple[TestClient, dict[str, str]]
) -> None:
    client, auth = populated
    if case.path == "/auth/session" and case.method == "DELETE":
        auth = sign_in(client, 2)  # ending the shared session would leave the rest unauthenticated
    response = case.call(session=None, headers=auth)
    case.validate_response(response, checks=CHECKS)
