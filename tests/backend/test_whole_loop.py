"""The whole loop on anvil: purchases -> receipts -> oracle -> root on chain -> every claim pays."""

from __future__ import annotations

from sqlalchemy import select

from backend.chain import ZERO_ADDRESS
from backend.epochs import proof_for
from backend.models import Epoch, EpochLeaf
from backend.services import Services
from backend.settings import Settings
from tests.backend.helpers import Market, seeder_pool

DAY = 86_400


def _feed(store: Services, market: Market, receipts: list[tuple[int, str, int, int]]) -> list[str]:
    verifier = store.verifier()
    signed = [market.receipt(pid, seeder, count, signer) for pid, seeder, count, signer in receipts]
    outcomes = store.sink().store_now([verifier.verify(r) for r in signed])
    return [o.status for o in outcomes]


def _claim_everything(store: Services, market: Market, epoch: Epoch) -> dict[str, int]:
    """Claim every leaf of `epoch` from an unrelated sender; what each account received."""
    sender = market.accounts[8]
    received: dict[str, int] = {}
    with store.db.reader() as session:
        leaves = session.scalars(select(EpochLeaf).where(EpochLeaf.epoch == epoch.number)).all()
        proofs = [proof_for(session, epoch, leaf.account, leaf.token) for leaf in leaves]
    for proof in proofs:
        assert proof is not None
        account = market.w3.to_checksum_address(proof.account)
        already = market.contract.functions.claimed(account, ZERO_ADDRESS).call()
        if already == proof.cumulative_amount:
            continue  # nothing new since the last epoch (the contract refuses empty claims)
        before = market.w3.eth.get_balance(account)
        market.transact(sender, "claim", account, ZERO_ADDRESS, proof.cumulative_amount, proof.proof)
        paid = market.w3.eth.get_balance(account) - before
        assert paid == proof.cumulative_amount - already
        received[proof.account] = paid
    return received


def test_purchases_receipts_root_and_claims_pay_exactly_what_settlement_says(
    store: Services, market: Market, settings: Settings
) -> None:
    seller, b1, b2, b3, b4 = market.accounts[1:6]
    shop = market.accounts[9]  # the store's seeding account
    size = 1_000_000
    product_id, _ = market.list_product(seller, size=size, price=10**18, discount_bps=2000)
    p1, p2, p3 = (market.buy(b, product_id) for b in (b1, b2, b3))
    pool = seeder_pool(10**18)  # 20% discount, 20% of it to the operator

    indexer, oracle = store.indexer(), store.oracle()
    oracle.check()
    indexer.sync()
    statuses = _feed(
        store,
        market,
        [
            (p1, shop, size, 2),  # b1 downloaded everything from the store
            (p2, b1, 600_000, 3),  # b2: 60% from b1 ...
            (p2, shop, 400_000, 3),  # ... and 40% from the store
            (p3, b1, 250_000, 4),  # b3: a quarter from b1, then the window passes
        ],
    )
    assert statuses == ["accepted"] * 4
    first = oracle.step(force=True)
    assert first.status == "posted"
    with store.db.reader() as session:
        epoch1 = session.get(Epoch, first.epoch)
    assert epoch1 is not None
    root, number = market.contract.functions.activeRoot().call()
    assert ("0x" + root.hex(), number) == (epoch1.root, epoch1.number)
    paid1 = _claim_everything(store, market, epoch1)
    assert paid1 == {
        shop.lower(): pool + pool * 400_000 // size,
        b1.lower(): pool * 600_000 // size + pool * 250_000 // size,
    }

    # A day and a half later: b4 buys, b3 finishes; then all of p1..p3 pass their window.
    market.anvil.rpc("evm_increaseTime", [DAY + DAY // 2])
    p4 = market.buy(b4, product_id)
    indexer.sync()
    assert _feed(store, market, [(p3, b2, 500_000, 4), (p4, b3, 300_000, 5)]) == ["accepted", "accepted"]
    second = oracle.step(force=True)
    assert second.status == "posted" and second.epoch == first.epoch + 1  # type: ignore[operator]
    with store.db.reader() as session:
        epoch2 = session.get(Epoch, second.epoch)
    assert epoch2 is not None
    paid2 = _claim_everything(store, market, epoch2)
    unearned_p3 = pool - pool * 250_000 // size - pool * 500_000 // size
    assert paid2 == {
        shop.lower(): (pool - pool * 400_000 // size - pool * 600_000 // size) + unearned_p3,
        b2.lower(): pool * 500_000 // size,
        b3.lower(): pool * 300_000 // size,
    }

    # Everyone withdraws what is theirs; what stays in the contract is exactly what is still owed:
    # the unfrozen part of p4's pool that nobody has claimed.
    market.transact(seller, "withdraw", ZERO_ADDRESS)
    market.transact(market.deployed.treasury, "withdraw", ZERO_ADDRESS)
    funded, claimed = market.contract.functions.seederPool(ZERO_ADDRESS).call()
    assert funded == 4 * pool
    assert claimed == sum(paid1.values()) + sum(paid2.values())
    assert market.w3.eth.get_balance(market.deployed.address) == funded - claimed
    assert funded - claimed == pool - pool * 300_000 // size
