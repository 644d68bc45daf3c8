"""Operating the store: liveness and readiness probes and Prometheus metrics, on the real app."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from backend.api.main import create_app
from backend.api.ratelimit import TokenBuckets
from backend.errors import RateLimited
from backend.models import AuthNonce
from backend.publication import parse_publication
from backend.services import Services
from backend.settings import Settings, load_settings
from backend.swarm_stats import InProcessStats
from tests.backend.helpers import Market, key, signed_receipt
from tracker.server import start_tracker


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


def test_one_address_asking_for_nonces_too_often_gets_429_and_grows_no_table(settings: Settings) -> None:
    strict = load_settings(**{**settings.model_dump(), "nonce_burst": 3, "nonce_rate": 0.01})
    store = Services.open(strict)
    app = create_app(strict, services=store)
    with (
        TestClient(app, client=("192.0.2.7", 5000)) as flood,
        TestClient(app, client=("192.0.2.8", 5000)) as other,
    ):
        answers = [flood.post("/auth/nonce") for _ in range(10)]
        assert [a.status_code for a in answers] == [200] * 3 + [429] * 7
        assert answers[-1].json()["detail"].startswith("too many requests")
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 100
        assert other.post("/auth/nonce").status_code == 200  # another address has its own bucket
    with store.db.reader() as session:
        assert session.scalar(select(func.count()).select_from(AuthNonce)) == 4
    store.close()


def test_a_token_bucket_refills_at_its_rate_and_forgets_the_least_recent_clients() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, max_clients=3, clock=lambda: now[0])
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(RateLimited) as refused:
        buckets.take("a")
    assert refused.value.retry_after == 1  # half a token a second short: rounded up to whole seconds
    now[0] += 0.5
    buckets.take("a")  # one token back after 1/rate seconds
    for client in ("b", "c", "d", "e"):
        buckets.take(client)
    assert len(buckets) == 3
    buckets.take("a")  # "a" was dropped as least recently used: a full bucket again
    buckets.take("a")


def test_an_epoch_publication_is_served_with_an_etag_and_rendered_once(
    client: TestClient, store: Services, market: Market
) -> None:
    product_id, _ = market.list_product(market.accounts[1])
    purchase = market.buy(market.accounts[2], product_id)
    store.indexer().sync()
    receipt = signed_receipt(market.domain, purchase, market.accounts[3], 1000, key(2))
    assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"
    assert store.oracle().step(force=True).status == "posted"

    first = client.get("/epochs/1/data")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    etag = first.headers["ETag"]
    assert parse_publication(first.json()).epoch == 1
    again = client.get("/epochs/1/data")
    assert (again.content, again.headers["ETag"]) == (first.content, etag)
    assert client.app.state.context.publications.renders == 1  # type: ignore[attr-defined]

    unchanged = client.get("/epochs/1/data", headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["ETag"]) == (304, b"", etag)
    stale = client.get("/epochs/1/data", headers={"If-None-Match": '"0123"'})
    assert stale.status_code == 200 and stale.content == first.content
    assert client.get("/epochs/2/data", headers={"If-None-Match": etag}).status_code == 404


def test_metrics_count_the_announces_of_a_tracker_in_the_same_process(store: Services) -> None:
    async def scenario() -> str:
        server = await start_tracker(
            "127.0.0.1", 0, store.policy(), store.sink(), store.verifier(), connect_check=False
        )
        try:
            app = create_app(store.settings, services=store, stats=InProcessStats(server))
            query = f"info_hash={'a' * 20}&peer_id={'B' * 20}&port=6881&uploaded=0&downloaded=0&left=0"
            async with httpx.AsyncClient() as client:
                for _ in range(3):  # an unknown passkey: counted, and refused
                    await client.get(f"http://127.0.0.1:{server.port}/{'0' * 32}/announce?{query}")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://store") as api:
                return (await api.get("/metrics")).text
        finally:
            server.close()
            await server.wait_closed()

    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(asyncio.run(scenario()))
        for sample in family.samples
    }
    assert samples["seedmarket_tracker_announces_total"] == 3
    assert samples["seedmarket_tracker_refusals_total"] == 3
