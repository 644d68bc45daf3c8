"""The whole loop on anvil, every part its own process: a seller lists with `ape run
list_product`, buyers pay from the CLI and from a browser wallet, download with receipts from the
store's seed, a buyer running `seedmarket seed` and a libtorrent peer; the oracle posts an epoch,
the store's keeper pays everyone with a leaf without anyone claiming, and every wei is where
settlement says.
And on the same store: a wallet that did not pay is kept out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote_from_bytes, urlencode

import bencodepy
import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from backend.settings import DEV_KEEPER_INDEX
from client.errors import ClientError
from client.store_client import StoreClient
from dev.devnet import free_port
from dev.devstack import dev_address, dev_key
from tests.e2e.helpers import (
    EPOCH_WAIT,
    ETH,
    SELLER,
    STORE,
    Store,
    check_the_books,
    digest,
    lt_seed,
    published_leaves,
    seeders,
    settle,
    settled_epoch,
    store_hung,
    until,
)
from tests.libtorrent_peer import lt_session
from tests.web.helpers import Visit, goto
from tracker.metainfo import parse_metainfo

BUYER_A, BUYER_B, BUYER_C = 2, 3, 4  # A and C use the CLI, B a browser wallet and then libtorrent
STRANGER = 5  # never pays


def browser_purchase(tab: Visit, store: Store, folder: Path) -> Path:
    """Buy the product in the browser, sign in, and download the personal .torrent; its path."""
    page = tab.page
    goto(page, f"{store.url}/item/{store.product_id}")
    tab.shot("e2e-product-page")
    page.get_by_role("button", name="Buy for 0.01 ETH").click()
    page.wait_for_selector("#status[data-kind=done]")
    assert tab.status().startswith("Purchase confirmed in block"), tab.status()
    tab.shot("e2e-product-bought")

    page.get_by_role("link", name="Library", exact=True).click()
    page.get_by_role("button", name="Sign in with Ethereum").first.click()
    page.wait_for_selector("text=Signed in as")

    def in_library() -> int:
        goto(page, f"{store.url}/library")
        return page.get_by_text("E2E album").count()

    until(in_library, "the purchase to reach the library")
    tab.shot("e2e-library")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .torrent").click()
    path = folder / "e2e-album.torrent"
    download.value.save_as(path)
    return path


def test_every_wallet_ends_with_exactly_what_it_paid_and_settlement_gave_it(
    anvil_store: Store, wallet_tab: Callable[[str, int], Visit], tmp_path: Path
) -> None:
    store, books = anvil_store, anvil_store.books
    pid = store.product_id
    _, _, _, size, _, _, _, infohash32 = books.view("product", pid)
    info_hash = bytes(infohash32)[:20]
    wanted = digest(store.content)
    people = {n: dev_address(n) for n in (STORE, SELLER, BUYER_A, BUYER_B, BUYER_C)}
    start = books.balances(people.values(), store.start_block)

    # A buys and downloads with the CLI; the store's seed is the only seeder yet.
    a = store.user("a", BUYER_A)
    a_purchase = a.json(*a.on_store("buy", str(pid), "--key", "a"))["purchase"]
    assert a_purchase == books.view("purchaseOf", pid, people[BUYER_A]) != 0
    a.ok(*a.on_store("download", str(pid), "--key", "a", "--out", str(tmp_path / "a")))
    assert digest(tmp_path / "a" / "e2e-album") == wanted
    assert a.ledger(info_hash, a_purchase) == {people[STORE]: size}

    # A keeps seeding in the background with `seedmarket seed`.
    a_port = free_port()
    a.spawn(
        *a.on_store("seed", "--key", "a", "--out", str(tmp_path / "a"), "--port", str(a_port)),
        log=tmp_path / "a-seed.log",
    )
    until(lambda: seeders(store.url, pid) >= 2, "A's seeder to join the swarm")

    # B buys in the browser and fetches the personal torrent there. Then the store stops
    # answering, and B downloads with the CLI from A alone, paying with receipts B's own key
    # signs; A hands them in once the store answers again.
    torrent_file = browser_purchase(wallet_tab(store.stack.rpc, BUYER_B), store, tmp_path)
    meta = parse_metainfo(torrent_file.read_bytes())
    assert meta.info_hash == info_hash and meta.private
    b_purchase = books.view("purchaseOf", pid, people[BUYER_B])
    assert b_purchase != 0
    b = store.user("b", BUYER_B)
    with store_hung(store.stack):
        b.ok(
            "download",
            str(torrent_file),
            "--key",
            "b",
            "--purchase",
            str(b_purchase),
            "--chain-id",
            str(books.w3.eth.chain_id),
            "--contract",
            store.stack.contract,
            "--peer",
            f"127.0.0.1:{a_port}",
            "--out",
            str(tmp_path / "b"),
        )
    assert digest(tmp_path / "b" / "e2e-album") == wanted
    assert b.ledger(info_hash, b_purchase) == {people[BUYER_A]: size}

    # B seeds from then on with an ordinary client, libtorrent, which asks for no receipts.
    libtorrent = lt_session()
    handle = lt_seed(libtorrent, torrent_file.read_bytes(), tmp_path / "b")
    until(lambda: seeders(store.url, pid) >= 3, "the libtorrent peer to join the swarm")

    # C buys and downloads with the CLI in a swarm of all three.
    c = store.user("c", BUYER_C)
    c_purchase = c.json(*c.on_store("buy", str(pid), "--key", "c"))["purchase"]
    c.ok(*c.on_store("download", str(pid), "--key", "c", "--out", str(tmp_path / "c")))
    assert digest(tmp_path / "c" / "e2e-album") == wanted
    c_paid = c.ledger(info_hash, c_purchase)
    # How the three shared C's download is up to the swarm; only libtorrent sent unsigned bytes.
    assert set(c_paid) <= {people[STORE], people[BUYER_A]} and sum(c_paid.values()) <= size
    unsigned = size - sum(c_paid.values())
    until(lambda: handle.status().all_time_upload >= unsigned, "libtorrent's count of what it sent")

    # The oracle closes epochs on its own schedule; wait for the one that froze every purchase.
    expected = {
        (purchase, seeder): count
        for user, purchase in ((a, a_purchase), (b, b_purchase), (c, c_purchase))
        for seeder, count in user.ledger(info_hash, purchase).items()
    }
    publication = settled_epoch(store, expected, frozen=3)
    assert a.stop_all() == [0]  # Ctrl-C stops the seeder cleanly
    libtorrent.pause()  # nothing it did is paid; it may go

    # The leaves, recomputed from the chain's purchases and the published receipts alone.
    leaves = settle(publication, books.purchases())
    assert published_leaves(publication) == leaves
    assert {account for account, _ in leaves} == {people[STORE], people[BUYER_A]}
    assert leaves[(people[BUYER_A], ETH)] >= books.purchases()[b_purchase].seeder_pool

    # Nobody claims: the store's keeper pays every leaf once its root is active; anyone can
    # check the epoch.
    until(
        lambda: all(books.view("claimed", acct, token) == amount for (acct, token), amount in leaves.items()),
        "the keeper to pay every leaf",
        EPOCH_WAIT,
    )
    payments = books.events("Claimed", store.start_block)
    senders = {books.w3.eth.get_transaction(e.transactionHash)["from"] for e in payments}
    assert senders == {dev_address(DEV_KEEPER_INDEX)}  # paid by the keeper, never by a seeder
    (standing,) = a.json(*a.on_store("rewards", "--key", "a"))["tokens"]
    assert {k: standing[k] for k in ("token", "earned", "inRoot", "claimed", "claimable", "pending")} == {
        "token": ETH,
        **dict.fromkeys(("earned", "inRoot", "claimed"), str(leaves[(people[BUYER_A], ETH)])),
        "claimable": "0",
        "pending": "0",
    }
    assert standing["autoPay"] == "nothing" and standing["paidAutomaticallyAt"] is not None
    a_payments = {
        "0x" + bytes(e.transactionHash).hex() for e in payments if e.args.account == people[BUYER_A]
    }
    assert standing["paidAutomaticallyTx"] in a_payments
    report = c.json("verify-epoch", str(publication["epoch"]), "--store", store.url, "--rpc", store.stack.rpc)
    assert report["ok"] and report["recomputedRoot"] == report["postedRoot"] == publication["root"], report

    check_the_books(store, start, leaves, purchases=3)


def test_a_product_that_does_not_exist_is_named_as_such_in_text_and_json(anvil_store: Store) -> None:
    missing = 999_999
    nobody = anvil_store.user("nobody", STRANGER)
    download = nobody.run(*nobody.on_store("download", str(missing), "--key", "nobody"))
    assert download.returncode == 1
    assert download.stderr.strip() == (
        f"error: there is no product {missing} on chain 31337 (the store's catalog lists them)"
    )
    buy = nobody.run(*nobody.on_store("buy", str(missing), "--key", "nobody", "--json"))
    assert buy.returncode == 1 and buy.stderr == ""
    assert json.loads(buy.stdout) == {
        "error": f"there is no product {missing} in the store at {anvil_store.url}"
    }


def test_an_unreachable_chain_node_is_named_in_one_line(anvil_store: Store) -> None:
    nobody = anvil_store.user("offline", STRANGER)
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = nobody.run(
        "buy", str(anvil_store.product_id), "--key", "offline", "--store", anvil_store.url, "--rpc", nowhere
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: cannot reach the chain node at {nowhere}: is it running? (--rpc URL)"
    )


def test_a_wallet_that_did_not_pay_gets_no_torrent_and_no_peers(anvil_store: Store, tmp_path: Path) -> None:
    store, pid = anvil_store, anvil_store.product_id
    info_hash = bytes(anvil_store.books.view("product", pid)[7])[:20]
    assert anvil_store.books.view("purchaseOf", pid, dev_address(STRANGER)) == 0
    assert seeders(store.url, pid) >= 1  # there is a swarm to be kept out of

    # The CLI says what to do, in one line, and fetches nothing.
    stranger = store.user("stranger", STRANGER)
    refused = stranger.run(
        *stranger.on_store("download", str(pid), "--key", "stranger", "--out", str(tmp_path))
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: this wallet has not bought product {pid}: seedmarket buy {pid} --key ..."
    )
    assert not any(tmp_path.iterdir())

    # Signed in to the store as that wallet: no torrent, but a passkey of its own ...
    account = Account.from_key(dev_key(STRANGER))
    with StoreClient(store.url) as client:
        client.sign_in(
            account.address, lambda text: bytes(account.sign_message(encode_defunct(text=text)).signature)
        )
        with pytest.raises(ClientError, match=r"this wallet has not bought this product \(HTTP 403\)"):
            client.torrent(pid)
        announce_url = client.me()["announceUrl"]

    # ... with which the tracker lists no peers for the product.
    query = urlencode(
        {"peer_id": "-XX0001-e2estranger0", "port": 6881, "uploaded": 0, "downloaded": 0, "left": 1}
    )
    answer = bencodepy.decode(
        httpx.get(f"{announce_url}?info_hash={quote_from_bytes(info_hash)}&{query}").content
    )
    assert set(answer) == {b"failure reason"}, answer
