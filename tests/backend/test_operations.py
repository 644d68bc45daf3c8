"""Operating the store: liveness and readiness probes and Prometheus metrics, on the real app."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from backend.api.main import create_app
from backend.services import Services
from backend.settings import Settings, load_settings
from tests.backend.helpers import Market, key, signed_receipt


@pytest.fixture
def client(store: Services) -> Iterator[TestClient]:
    with TestClient(create_app(store.settings, services=store)) as test_client:
        yield test_client


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the probe is: nothing listens there


def test_healthz_answers_without_touching_the_chain_or_the_database(settings: Settings) -> None:
    offline = load_settings(**{**settings.model_dump(), "rpc_url": f"http://127.0.0.1:{_closed_port()}"})
    store = Services.open(offline)
    with TestClient(create_app(offline, services=store)) as client:
        assert client.get("/healthz").json() == {"status": "ok", "problems": [], "lag": None}
    store.close()


def test_readyz_waits_for_the_indexer_and_then_reports_ready(client: TestClient, store: Services) -> None:
    before = client.get("/readyz")
    assert before.status_code == 503
    assert before.json()["problems"] == ["the indexer has not read the chain yet"]
    store.indexer().sync()
    after = client.get("/readyz")
    assert after.status_code == 200 and after.json() == {"status": "ready", "problems": [], "lag": 0}


def test_readyz_is_unready_when_the_chain_is_unreachable(settings: Settings) -> None:
    offline = load_settings(**{**settings.model_dump(), "rpc_url": f"http://127.0.0.1:{_closed_port()}"})
    store = Services.open(offline)
    with TestClient(create_app(offline, services=store)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["problems"] == [
            f"chain unreachable: RPC {offline.rpc_url} is unreachable: ConnectionError"
        ]
        assert "seedmarket_indexer_lag_blocks" not in client.get("/metrics").text  # unknown, not 0
    store.close()


def test_metrics_count_receipts_and_report_the_indexer_lag_and_the_oracle(
    client: TestClient, store: Services, market: Market
) -> None:
    store.indexer().sync()
    product_id, _ = market.list_product(market.accounts[1])
    purchase = market.buy(market.accounts[2], product_id)
    market.anvil.rpc("evm_mine")
    market.anvil.rpc("evm_mine")
    lagging = _samples(client)
    assert lagging[("seedmarket_indexer_lag_blocks", ())] == 4  # list, buy and two empty blocks
    assert lagging[("seedmarket_oracle_state", (("status", "none"),))] == 1
    assert ("seedmarket_epoch_age_seconds", ()) not in lagging

    store.indexer().sync()
    sink, verifier = store.sink(), store.verifier()
    good = signed_receipt(market.domain, purchase, market.accounts[3], 1000, key(2))
    forged = signed_receipt(market.domain, purchase, market.accounts[3], 2000, key(4))  # not the buyer
    outcomes = sink.store_now([verifier.verify(good), verifier.verify(forged)])
    assert [o.status for o in outcomes] == ["accepted", "rejected"]
    assert store.oracle().step(force=True).status == "posted"

    samples = _samples(client)
    assert samples[("seedmarket_indexer_lag_blocks", ())] == 1  # the block of the root just posted
    assert samples[("seedmarket_receipts_total", (("outcome", "accepted"), ("reason", "")))] == 1
    rejected = (("outcome", "rejected"), ("reason", outcomes[1].reason or ""))
    assert samples[("seedmarket_receipts_total", rejected)] == 1
    assert samples[("seedmarket_oracle_state", (("status", "posted"),))] == 1
    assert samples[("seedmarket_oracle_state", (("status", "none"),))] == 0
    assert samples[("seedmarket_pending_transactions", ())] == 0
    assert samples[("seedmarket_epoch_age_seconds", ())] >= 0
