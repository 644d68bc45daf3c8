"""The JSON API over a real chain and database: catalog, sign-in, listings, torrents, epochs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.main import create_app
from backend.chain import ZERO_ADDRESS
from backend.merkle import MerkleTree
from backend.services import Services
from tests.backend.api_helpers import listing_body, make_torrent, sign_in
from tests.backend.helpers import Market, key, seeder_pool, signed_receipt
from tests.backend.siwe_helpers import address_of, sign_text, siwe_message
from tests.conftest import REPO
from tracker.metainfo import parse_metainfo

SIZE = 70_000


@pytest.fixture
def client(store: Services) -> Iterator[TestClient]:
    with TestClient(create_app(store.settings, services=store)) as test_client:
        yield test_client


@pytest.fixture
def listed(market: Market, store: Services, tmp_path: Path) -> tuple[int, bytes]:
    """A product listed on chain by account 1 with a real torrent, indexed; (product id, torrent)."""
    torrent, infohash = make_torrent(tmp_path / "content", SIZE)
    product_id, _ = market.list_product(market.accounts[1], size=SIZE, infohash=infohash)
    store.indexer().sync()
    return product_id, torrent


def test_the_catalog_shows_on_chain_terms_and_registered_descriptions(
    client: TestClient, listed: tuple[int, bytes], market: Market
) -> None:
    product_id, torrent = listed
    page = client.get("/products").json()
    assert page["total"] == 1
    item = page["items"][0]
    assert item["id"] == product_id and item["registered"] is False and item["title"] is None
    assert item["seller"] == market.accounts[1] and item["size"] == SIZE and item["price"] == str(10**18)
    assert item["infoHash"] == parse_metainfo(torrent).info_hash.hex()
    headers = sign_in(client, 1)
    answer = client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=headers)
    assert answer.status_code == 200, answer.text
    detail = client.get(f"/products/{product_id}").json()
    assert detail["registered"] is True and detail["title"] == "An album" and detail["name"] == "album.bin"
    assert client.get("/products", params={"registered": False}).json()["total"] == 0


def test_a_seller_cannot_register_another_sellers_listing(
    client: TestClient, listed: tuple[int, bytes]
) -> None:
    product_id, torrent = listed
    intruder = sign_in(client, 2)
    answer = client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=intruder)
    assert answer.status_code == 403
    assert client.get(f"/products/{product_id}").json()["registered"] is False


def test_a_squatter_copying_an_infohash_never_gets_the_content_served_under_its_listing(
    client: TestClient, listed: tuple[int, bytes], market: Market, store: Services
) -> None:
    product_id, torrent = listed
    infohash = parse_metainfo(torrent).info_hash
    # The squatter saw the seller's infohash in the mempool and listed it first, at a lower price.
    squatted, _ = market.list_product(market.accounts[2], size=SIZE, infohash=infohash, price=1)
    store.indexer().sync()
    assert squatted != product_id
    assert client.get(f"/products/{squatted}").json()["infoHash"] == infohash.hex()
    seller = sign_in(client, 1)
    assert (
        client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=seller).status_code
        == 200
    )

    # Even with the torrent in hand (a buyer gets it), the squatter cannot register the same content.
    answer = client.put(
        f"/products/{squatted}/listing", json=listing_body(torrent), headers=sign_in(client, 2)
    )

    assert answer.status_code == 403 and f"product {product_id}" in answer.json()["detail"]
    assert client.get(f"/products/{squatted}").json()["registered"] is False
    # Neither can the seller register the content a second time under another product.
    relisted, _ = market.list_product(market.accounts[1], size=SIZE, infohash=infohash)
    store.indexer().sync()
    assert (
        client.put(f"/products/{relisted}/listing", json=listing_body(torrent), headers=seller).status_code
        == 403
    )


def test_a_product_shows_the_terms_version_a_purchase_must_name(
    client: TestClient, listed: tuple[int, bytes], market: Market, store: Services
) -> None:
    product_id, _ = listed
    assert client.get(f"/products/{product_id}").json()["termsVersion"] == 1
    market.transact(market.accounts[1], "updateProduct", product_id, ZERO_ADDRESS, 5, 0, "ipfs://y")
    store.indexer().sync()
    detail = client.get(f"/products/{product_id}").json()
    assert (detail["termsVersion"], detail["price"]) == (2, "5")


def test_a_listing_must_carry_the_listed_torrent(
    client: TestClient, listed: tuple[int, bytes], tmp_path: Path
) -> None:
    product_id, _ = listed
    headers = sign_in(client, 1)
    other, _ = make_torrent(tmp_path / "other", SIZE + 1)
    public, _ = make_torrent(tmp_path / "public", SIZE, private=False)
    for torrent, reason in ((other, "infohash"), (public, "infohash"), (b"d4:spami1ee", "torrent")):
        answer = client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=headers)
        assert answer.status_code == 422 and reason in answer.json()["detail"]
    bad = client.put(
        f"/products/{product_id}/listing", json={"title": "x", "torrent": "%%%%"}, headers=headers
    )
    assert bad.status_code == 422
    assert client.put(f"/products/{product_id}/listing", json=listing_body(b"x" * 10)).status_code == 401


def test_a_buyer_downloads_a_personal_torrent_and_others_cannot(
    client: TestClient, listed: tuple[int, bytes], market: Market, store: Services
) -> None:
    product_id, torrent = listed
    client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=sign_in(client, 1))
    market.buy(market.accounts[2], product_id)
    store.indexer().sync()
    buyer = sign_in(client, 2)
    answer = client.get(f"/products/{product_id}/torrent", headers=buyer)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-bittorrent"
    personal = parse_metainfo(answer.content)
    me = client.get("/me", headers=buyer).json()
    assert personal.announce == f"{store.settings.tracker_url}/{me['passkey']}/announce" == me["announceUrl"]
    assert personal.info_hash == parse_metainfo(torrent).info_hash
    purchases = client.get("/me/purchases", headers=buyer).json()
    assert [(p["productId"], p["title"]) for p in purchases] == [(product_id, "An album")]
    stranger = sign_in(client, 3)
    assert client.get(f"/products/{product_id}/torrent", headers=stranger).status_code == 403
    assert client.get(f"/products/{product_id}/torrent").status_code == 401
    assert client.get("/products/999/torrent", headers=buyer).status_code == 404


def test_sign_in_failures_are_401_and_sessions_end(client: TestClient) -> None:
    nonce = client.post("/auth/nonce").json()
    text = siwe_message(address_of(2), nonce["nonce"], domain=nonce["domain"], uri=nonce["uri"])
    wrong = siwe_message(address_of(2), nonce["nonce"], domain="evil.example", uri=nonce["uri"])
    assert (
        client.post("/auth/session", json={"message": wrong, "signature": sign_text(wrong, 2)}).status_code
        == 401
    )
    assert (
        client.post("/auth/session", json={"message": text, "signature": sign_text(text, 3)}).status_code
        == 401
    )
    good = {"message": text, "signature": sign_text(text, 2)}
    answer = client.post("/auth/session", json=good)
    assert answer.status_code == 200
    assert "seedmarket_session" in answer.cookies
    assert client.post("/auth/session", json=good).status_code == 401  # replayed nonce
    headers = {"Authorization": f"Bearer {answer.json()['token']}"}
    client.cookies.clear()
    assert client.get("/auth/session", headers=headers).json()["address"] == address_of(2)
    assert client.delete("/auth/session", headers=headers).status_code == 204
    assert client.get("/auth/session", headers=headers).status_code == 401
    assert client.get("/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_malformed_requests_get_a_short_reason(client: TestClient) -> None:
    for path in ("/products/0", "/products/abc", f"/products/{2**70}", "/epochs/0", "/accounts/0x12/rewards"):
        answer = client.get(path)
        assert answer.status_code == 422
        assert isinstance(answer.json()["detail"], str)
    answer = client.post("/auth/session", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 422 and isinstance(answer.json()["detail"], str)
    huge = client.put("/products/1/listing", content=b"x" * (17 * 1024 * 1024))
    assert huge.status_code == 413


def test_rewards_epochs_and_proofs_after_an_epoch(
    client: TestClient, listed: tuple[int, bytes], market: Market, store: Services, node: str
) -> None:
    product_id, _ = listed
    seeder = market.accounts[3]
    purchase = market.buy(market.accounts[2], product_id)
    store.indexer().sync()
    verifier = store.verifier()
    receipt = signed_receipt(market.domain, purchase, seeder, SIZE // 2, key(2))
    assert store.sink().store_now([verifier.verify(receipt)])[0].status == "accepted"
    pool = seeder_pool(10**18)
    started = int(time.time())
    before = client.get(f"/accounts/{seeder}/rewards").json()
    assert before["activeEpoch"] is None
    (standing,) = before["tokens"]
    expected_at = standing.pop("autoPayExpectedAt")  # the next root's activation, roughly
    assert standing == {
        "token": ZERO_ADDRESS,
        "earned": str(pool // 2),
        "inRoot": "0",
        "claimed": "0",
        "claimable": "0",
        "pending": str(pool // 2),
        "autoPay": "next-root",
        "autoPayThreshold": str(store.settings.keeper_threshold_wei),
        "paidAutomaticallyAt": None,
        "paidAutomaticallyTx": None,
        "paidAutomaticallyAmount": None,
    }
    assert expected_at >= started  # the next epoch's close (wall clock) plus the root delay
    assert client.get(f"/accounts/{seeder}/rewards/{ZERO_ADDRESS}/proof").status_code == 404
    result = store.oracle().step(force=True)
    assert result.status == "posted"
    after = client.get(f"/accounts/{seeder.lower()}/rewards").json()
    assert after["activeEpoch"] == result.epoch
    assert after["tokens"][0]["claimable"] == str(pool // 2) and after["tokens"][0]["pending"] == "0"
    assert after["tokens"][0]["autoPay"] == "due"  # no keeper runs here: the seeder claims
    proof = client.get(f"/accounts/{seeder}/rewards/{ZERO_ADDRESS}/proof").json()
    market.transact(
        market.accounts[8], "claim", seeder, ZERO_ADDRESS, int(proof["cumulativeAmount"]), proof["proof"]
    )
    claimed = client.get(f"/accounts/{seeder}/rewards").json()["tokens"][0]
    assert (claimed["claimed"], claimed["claimable"]) == (str(pool // 2), "0")

    epochs = client.get("/epochs").json()
    assert epochs["total"] == 1 and epochs["items"][0]["status"] == "posted"
    tree = client.get(f"/epochs/{result.epoch}/tree").json()
    assert "0x" + MerkleTree.load(tree).root.hex() == epochs["items"][0]["root"]
    loaded = subprocess.run(
        [node, str(REPO / "tests" / "backend" / "oz_merkle_load.js")],
        input=json.dumps(tree),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert json.loads(loaded.stdout)["root"] == epochs["items"][0]["root"]
    data = client.get(f"/epochs/{result.epoch}/data").json()
    assert [r["purchase"] for r in data["receipts"]] == [purchase]
    assert data["receipts"][0]["sig"] == "0x" + receipt.signature.hex()
    assert client.get("/epochs/99").status_code == 404


def test_a_body_that_is_not_utf8_is_an_invalid_request(client: TestClient) -> None:
    answer = client.post(
        "/auth/session", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and answer.json() == {"detail": "request body is not valid JSON"}


def test_a_sellers_sales_add_up_per_product_and_token(
    client: TestClient, listed: tuple[int, bytes], market: Market, store: Services
) -> None:
    product_id, torrent = listed
    client.put(f"/products/{product_id}/listing", json=listing_body(torrent), headers=sign_in(client, 1))
    for buyer in (2, 3):
        market.buy(market.accounts[buyer], product_id)
    store.indexer().sync()
    sales = client.get(f"/sellers/{market.accounts[1].lower()}/sales").json()
    assert sales["seller"] == market.accounts[1]
    (row,) = sales["products"]
    assert (row["productId"], row["title"], row["count"], row["gross"]) == (
        product_id,
        "An album",
        2,
        str(2 * 10**18),
    )
    seller_amount = 2 * (10**18 - 10**18 * 2000 // 10_000)  # the Market helper lists at a 20 % discount
    assert row["sellerAmount"] == str(seller_amount)
    assert sales["totals"] == [
        {"token": row["token"], "count": 2, "gross": str(2 * 10**18), "sellerAmount": str(seller_amount)}
    ]
    nobody = client.get(f"/sellers/{market.accounts[5]}/sales").json()
    assert nobody["products"] == [] and nobody["totals"] == []
    assert client.get("/sellers/0x1234/sales").status_code == 422
