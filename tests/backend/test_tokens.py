"""Several payment tokens: every root lists all funded tokens in ascending order, claims pay in each."""

from __future__ import annotations

from sqlalchemy import select

from backend.chain import ZERO_ADDRESS
from backend.epochs import proof_for
from backend.models import Epoch, EpochLeaf
from backend.services import Services
from tests.backend.helpers import Market, key, seeder_pool, signed_receipt

SIZE = 1_000_000
PRICE = 10**20


def test_roots_list_every_funded_token_and_claims_pay_in_each(sqlite_store: Services, market: Market) -> None:
    tokens = sorted((market.add_token("AAA"), market.add_token("BBB")), key=str.lower)
    seller, seeder = market.accounts[1], market.accounts[3]
    eth_product, _ = market.list_product(seller, size=SIZE)
    token_products = [market.list_product(seller, size=SIZE, price=PRICE, token=t)[0] for t in tokens]
    eth_purchase = market.buy(market.accounts[2], eth_product)
    paid = market.buy_in_token(market.accounts[2], token_products[0])
    sqlite_store.indexer().sync()
    # Funded after the indexer's last look: the oracle must still list it (the contract insists).
    market.buy_in_token(market.accounts[4], token_products[1])
    receipts = [
        signed_receipt(market.domain, eth_purchase, seeder, SIZE // 2, key(2)),
        signed_receipt(market.domain, paid, seeder, SIZE, key(2)),
    ]
    assert [
        o.status for o in sqlite_store.sink().store_now([sqlite_store.verifier().verify(r) for r in receipts])
    ] == [
        "accepted",
        "accepted",
    ]
    result = sqlite_store.oracle().step(force=True)
    assert result.status == "posted"

    event = market.contract.events.RootPosted().get_logs(from_block=market.deployed.block)[0]["args"]
    expected_order = sorted([ZERO_ADDRESS, *tokens], key=lambda a: int(a, 16))
    assert [t.lower() for t in event["tokens"]] == [t.lower() for t in expected_order]
    pool = seeder_pool(PRICE)
    eth_pool = seeder_pool(10**18)
    totals = dict(zip((t.lower() for t in event["tokens"]), event["cumulativeTotals"], strict=True))
    assert totals == {ZERO_ADDRESS: eth_pool // 2, tokens[0].lower(): pool, tokens[1].lower(): 0}

    with sqlite_store.db.reader() as session:
        epoch = session.get(Epoch, result.epoch)
        assert epoch is not None
        leaves = session.scalars(select(EpochLeaf).where(EpochLeaf.epoch == epoch.number)).all()
        proofs = [proof_for(session, epoch, leaf.account, leaf.token) for leaf in leaves]
    for proof in proofs:
        assert proof is not None
        market.transact(market.accounts[8], "claim", seeder, market.w3.to_checksum_address(proof.token),
                        proof.cumulative_amount, proof.proof)  # fmt: skip
    assert market.token(tokens[0]).functions.balanceOf(seeder).call() == pool
