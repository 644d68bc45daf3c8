"""The whole loop on anvil, every part its own process: a seller lists with `ape run
list_product`, buyers pay from the CLI and from a browser wallet, download with receipts from the
store's seed, a buyer running `seedmarket seed` and a libtorrent peer; the oracle posts an epoch,
everyone with a leaf claims with `seedmarket claim`, and every wei is where settlement says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backend.devnet import free_port
from backend.devstack import dev_address
from tests.e2e.helpers import (
    ETH,
    PRICE_WEI,
    SELLER,
    STORE,
    Books,
    Leaves,
    Store,
    digest,
    lt_seed,
    lt_session,
    published_leaves,
    seeders,
    settle,
    store_get,
    store_hung,
    until,
)
from tests.web.helpers import Visit, goto
from tracker.metainfo import parse_metainfo

BUYER_A, BUYER_B, BUYER_C = 2, 3, 4  # A and C use the CLI, B a browser wallet and then libtorrent
EPOCH_WAIT = 120.0


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
    until(
        lambda: (goto(page, f"{store.url}/library"), page.get_by_text("E2E album").count())[1],
        "the purchase to reach the library",
    )
    tab.shot("e2e-library")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .torrent").click()
    path = folder / "e2e-album.torrent"
    download.value.save_as(path)
    return path


def final_epoch(store: Store, purchases: int, expected: dict[tuple[int, str], int]) -> dict:
    """Wait for the active root to be an epoch that froze every purchase and credits exactly the
    receipts each downloader's client signed; that epoch's publication."""

    def ready() -> dict | None:
        _, number = store.books.view("activeRoot")
        if number == 0:
            return None
        publication = store_get(store.url, f"/epochs/{number}/data")
        signed = {(r["purchase"], r["seeder"]): r["bytes"] for r in publication["receipts"]}
        if len(publication["frozen"]) == purchases and signed == expected:
            return publication
        return None

    return until(ready, "an active root with every purchase frozen and every receipt in", EPOCH_WAIT, 1.0)


def test_every_wallet_ends_with_exactly_what_it_paid_and_settlement_gave_it(
    anvil_store: Store, wallet_tab: Callable[[str, int], Visit], tmp_path: Path
) -> None:
    store, books = anvil_store, anvil_store.books
    pid = store.product_id
    _, _, _, size, _, _, infohash32 = books.view("product", pid)
    info_hash = bytes(infohash32)[:20]
    wanted = digest(store.content)
    people = {n: dev_address(n) for n in (STORE, SELLER, BUYER_A, BUYER_B, BUYER_C)}
    start = {n: books.balance(a, store.start_block) for n, a in people.items()}

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
    assert set(c_paid) <= {people[STORE], people[BUYER_A]} and 0 < sum(c_paid.values()) <= size
    unsigned = size - sum(c_paid.values())  # what only the libtorrent peer can have sent
    until(lambda: handle.status().all_time_upload >= unsigned, "libtorrent's count of what it sent")

    # The oracle closes epochs on its own schedule; wait for the one that froze every purchase.
    expected = {
        (purchase, seeder): count
        for user, purchase in ((a, a_purchase), (b, b_purchase), (c, c_purchase))
        for seeder, count in user.ledger(info_hash, purchase).items()
    }
    publication = final_epoch(store, 3, expected)
    a.stop_all()
    libtorrent.pause()  # nothing it did is paid; it may go

    # The leaves, recomputed from the chain's purchases and the published receipts alone.
    leaves = settle(publication, books.purchases())
    assert published_leaves(publication) == leaves
    assert {account for account, _ in leaves} == {people[STORE], people[BUYER_A]}
    assert leaves[(people[BUYER_A], ETH)] >= books.purchases()[b_purchase].seeder_pool

    # Everyone with a leaf claims with the CLI; anyone can check the epoch.
    claimers = {people[STORE]: store.user("store", STORE), people[BUYER_A]: a}
    for account, token in leaves:
        user = claimers[account]
        claimed = user.json(*user.on_store("claim", "--key", user.home.name))
        assert claimed["claimed"] == {token: str(leaves[(account, token)])}
    report = c.json("verify-epoch", str(publication["epoch"]), "--store", store.url, "--rpc", store.stack.rpc)
    assert report["ok"], report

    check_the_books(store, books, start, people, leaves)


def check_the_books(
    store: Store, books: Books, start: dict[int, int], people: dict[int, str], leaves: Leaves
) -> None:
    """Every wallet's balance, the seller's and treasury's withdrawable balances and the
    contract's balance, to the wei, from the chain alone."""
    head = books.head
    purchases = books.purchases()
    assert len(purchases) == 3 and all(p.price == PRICE_WEI for p in purchases.values())
    spent = books.spending(people.values(), store.start_block + 1, head)
    for n, address in people.items():
        price_paid = sum(p.price for p in purchases.values() if p.buyer == address)
        value, gas = spent[address]
        assert value == price_paid, f"account {n} sent {value} wei besides gas, bought for {price_paid}"
        assert books.view("claimed", address, ETH) == leaves.get((address, ETH), 0)
        assert books.balance(address, head) == start[n] - price_paid - gas + leaves.get((address, ETH), 0), (
            f"account {n}"
        )
    # DESIGN.md's split: pool = price * discount; the operator's fee is its share of the pool.
    discount, fee_bps = books.view("product", store.product_id)[1], books.view("operatorFeeBps")
    pools = {pid: p.price * discount // 10_000 for pid, p in purchases.items()}
    for pid, p in purchases.items():
        assert p.operator_fee == pools[pid] * fee_bps // 10_000
        assert p.seeder_pool == pools[pid] - p.operator_fee
    seller_due = sum(p.price - pools[pid] for pid, p in purchases.items())
    fees = sum(p.operator_fee for p in purchases.values())
    assert books.view("balanceOf", people[SELLER], ETH) == seller_due
    assert books.view("balanceOf", books.view("treasury"), ETH) == fees
    # What the contract still owes: withdrawable balances and the pool nobody has claimed yet.
    unclaimed_pool = sum(p.seeder_pool for p in purchases.values()) - sum(leaves.values())
    assert books.balance(store.stack.contract, head) == seller_due + fees + unclaimed_pool
