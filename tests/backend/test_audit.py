"""verify-epoch: a published epoch recomputes from the chain; every kind of tampering is caught."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from backend.audit import audit_epoch, check_chain
from backend.epochs import publication
from backend.errors import AuditError
from backend.models import Epoch
from backend.publication import parse_publication
from backend.services import Services
from backend.settlement import digest_of
from tests.backend.helpers import Market, address_of_key, key, signed_receipt
from tests.backend.processes import cli, run, store_env
from tracker.receipts import ReceiptKey, SignedKey, SignedReceipt, sign_receipt_key, to_json

SIZE = 1_000_000
DAY = 86_400


@pytest.fixture
def published(sqlite_store: Services, market: Market) -> dict[str, Any]:
    """Epoch 1 with three purchases, two seeders and one frozen purchase, as the store publishes it."""
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    early = market.buy(market.accounts[2], product_id)
    market.anvil.rpc("evm_increaseTime", [2 * DAY])
    later = [market.buy(market.accounts[b], product_id) for b in (4, 5)]
    sqlite_store.indexer().sync()
    receipts = [
        signed_receipt(market.domain, early, market.accounts[3], SIZE // 3, key(2)),
        signed_receipt(market.domain, later[0], market.accounts[3], SIZE, key(4)),
        signed_receipt(market.domain, later[1], market.accounts[6], SIZE // 2, key(5)),
        signed_receipt(market.domain, later[1], market.accounts[3], SIZE, key(5)),  # clipped to half
    ]
    # And one signed by a session key the buyer authorised.
    session_key = key(11)
    grant = ReceiptKey(early, bytes.fromhex(address_of_key(session_key)[2:]), int(time.time()) + 3600)
    delegated = signed_receipt(market.domain, early, market.accounts[6], SIZE // 3, session_key)
    receipts.append(
        SignedReceipt(
            delegated.receipt,
            delegated.signature,
            SignedKey(grant, sign_receipt_key(market.domain, grant, key(2))),
        )
    )
    sqlite_store.sink().store_now([sqlite_store.verifier().verify(r) for r in receipts])
    assert sqlite_store.oracle().step(force=True).status == "posted"
    with sqlite_store.db.reader() as session:
        epoch = session.get(Epoch, 1)
        assert epoch is not None
        return publication(session, epoch, 31337, market.deployed.address).document()


def test_an_honest_epoch_recomputes_to_the_posted_root(
    sqlite_store: Services, published: dict[str, Any], market: Market
) -> None:
    report = audit_epoch(published, sqlite_store.chain, market.deployed.block)
    assert report.ok, report.problems
    assert report.recomputed_root == report.posted_root == published["root"]
    assert (report.purchases, report.receipts) == (3, 5)
    assert any("key" in r for r in published["receipts"])
    assert published["frozen"] == [{"purchase": 1, "recipient": market.accounts[9]}]


def _tampered(published: dict[str, Any], change: str, market: Market) -> dict[str, Any]:
    doc = copy.deepcopy(published)
    if change == "credited":
        doc["receipts"][0]["credited"] += 1
    elif change == "signature":
        doc["receipts"][0]["sig"] = doc["receipts"][0]["sig"][:-4] + "1b1c"[:4]
    elif change == "forged":
        forged = signed_receipt(market.domain, 2, market.accounts[7], SIZE, key(7))
        doc["receipts"].append({**to_json(forged), "credited": SIZE, "acceptedAt": 0})
    elif change == "frozen":
        doc["frozen"].append({"purchase": 2, "recipient": market.accounts[9]})
    elif change == "recipient":
        doc["frozen"][0]["recipient"] = market.accounts[7]
    elif change == "unfrozen":
        doc["frozen"] = []
    elif change == "root":
        doc["root"] = "0x" + "11" * 32
    elif change == "overcredit":
        clipped = next(r for r in doc["receipts"] if r["credited"] < r["bytes"])
        clipped["credited"] = clipped["bytes"]  # the purchase's credits now pass its length
    return doc


@pytest.mark.parametrize(
    "change", ["credited", "signature", "forged", "frozen", "recipient", "unfrozen", "root", "overcredit"]
)
def test_a_tampered_publication_does_not_verify(
    sqlite_store: Services, published: dict[str, Any], market: Market, change: str
) -> None:
    report = audit_epoch(_tampered(published, change, market), sqlite_store.chain, market.deployed.block)
    assert not report.ok


def test_a_publication_for_another_contract_is_refused(
    sqlite_store: Services, published: dict[str, Any], market: Market
) -> None:
    with pytest.raises(AuditError, match="not this chain's Marketplace"):
        audit_epoch({**published, "contract": "0x" + "12" * 20}, sqlite_store.chain, market.deployed.block)
    with pytest.raises(AuditError, match="publication"):
        audit_epoch({"format": "nope"}, sqlite_store.chain, market.deployed.block)


def test_verify_epoch_on_the_command_line(
    sqlite_store: Services, published: dict[str, Any], market: Market, tmp_path: Path
) -> None:
    saved = tmp_path / "epoch1.json"
    saved.write_text(json.dumps(published))
    env = store_env(sqlite_store.settings)
    good = run(cli("verify-epoch", "1", "--file", str(saved)), env)
    assert good.returncode == 0 and "epoch 1: OK" in good.stdout, good.stderr
    saved.write_text(json.dumps(_tampered(published, "credited", market)))
    bad = run(cli("verify-epoch", "1", "--file", str(saved), "--json"), env)
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
    wrong = run(cli("verify-epoch", "2", "--file", str(saved)), env)
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1 and "epoch 2" in wrong.stderr


# ----- a later epoch: the delta and the settled totals it builds on -----


def test_a_later_epoch_verifies_from_the_previous_epochs_settled_totals_and_the_hash_chain(
    sqlite_store: Services, published: dict[str, Any], market: Market, tmp_path: Path
) -> None:
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    market.anvil.rpc("evm_increaseTime", [2 * DAY])  # purchases 2 and 3 freeze in epoch 2
    late = market.buy(market.accounts[7], product_id)
    sqlite_store.indexer().sync()
    receipt = signed_receipt(market.domain, late, market.accounts[3], SIZE // 4, key(7))
    sqlite_store.sink().store_now([sqlite_store.verifier().verify(receipt)])
    assert sqlite_store.oracle().step(force=True).status == "posted"
    with sqlite_store.db.reader() as session:
        epoch = session.get(Epoch, 2)
        assert epoch is not None
        second = publication(session, epoch, 31337, market.deployed.address).document()

    # Only the delta: purchase 1 is in epoch 1's settled totals, not in the receipts or frozen.
    assert second["base"]["epoch"] == 1 and second["base"]["openFrom"] == 2
    assert second["previous"] == published["settled"]
    assert [f["purchase"] for f in second["frozen"]] == [2, 3]
    assert {r["purchase"] for r in second["receipts"]} == {2, 3, late}
    report = audit_epoch(second, sqlite_store.chain, market.deployed.block)
    check_chain(report, parse_publication(second), parse_publication(published))
    assert report.ok and report.chained, report.problems
    assert report.settled == second["settled"] and report.recomputed_root == second["root"]
    (tmp_path / "epoch1.json").write_text(json.dumps(published))
    (tmp_path / "epoch2.json").write_text(json.dumps(second))
    command = cli("verify-epoch", "2", "--file", str(tmp_path / "epoch2.json"), "--previous")
    checked = run([*command, str(tmp_path / "epoch1.json")], store_env(sqlite_store.settings))
    assert checked.returncode == 0 and "hash chain checked" in checked.stdout, checked.stdout + checked.stderr

    # Carried totals that are not the ones epoch 1 settled: the digest gives them away.
    raised = copy.deepcopy(second)
    raised["base"]["totals"][0][2] = str(int(raised["base"]["totals"][0][2]) + 1)
    assert not audit_epoch(raised, sqlite_store.chain, market.deployed.block).ok
    # Totals and digest both rewritten: the chain to epoch 1's publication breaks.
    raised["previous"] = digest_of(raised["base"])
    forged = audit_epoch(raised, sqlite_store.chain, market.deployed.block)
    check_chain(forged, parse_publication(raised), parse_publication(published))
    assert not forged.ok and forged.chained is False
