"""The keeper: after each root activates, pays the leaves the rules allow, in batches, crash-safe.

A step first follows the batches in flight (`payout_batches` rows in "sending"), through the same
durable-transaction code as the oracle (`TransactionSender.follow`): each batch is signed with its
own nonce and stored *before* it is broadcast; after a crash the stored bytes are broadcast again,
a batch unmined for `tx_replace_after` seconds is replaced with higher fees under `max_fee_gwei`,
and one whose nonce went elsewhere is marked dropped. Only when none is in flight does it read the
claimable root (`activeRoot()`), the unpaid part of each of its leaves (`claimed` and
`payoutBlocked` on chain, for the leaves the indexed claims leave above their threshold) and plan
new batches (backend.keeper.plan). Nothing is paid twice: the contract skips a leaf already paid
up, so a batch sent again after a crash, or racing a seeder's own claim, pays each leaf once.
A root canceled after the keeper read it makes its batch revert (the proof no longer matches the
claimable root); the batch is marked reverted and its leaves are planned again from the root that
is claimable then.

The keeper signs with a key of its own (`keeper_key`), never the oracle's: both pick their next
nonce from the node, and two writers of one account's nonces would replace each other's
transactions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import Chain
from backend.db import Database
from backend.epochs import tree_of
from backend.errors import ConfigError, ContractRevert, KeeperError
from backend.keeper.batches import Batches, Mined
from backend.keeper.plan import Batch, Candidate, Plan, Rules, plan
from backend.models import (
    ChainEvent,
    Epoch,
    EpochLeaf,
    PayoutBatch,
    PayoutLeaf,
    PayoutOutcome,
    PayoutStatus,
)
from backend.oracle.fees import GWEI
from backend.oracle.loop import crash_point, run_steps
from backend.oracle.sender import SignedTx, TransactionSender
from backend.settings import Settings

log = logging.getLogger(__name__)

_CALLS_PER_REQUEST = 500  # eth_calls in one JSON-RPC batch
FEE_RECHECK = 600.0  # seconds before leaves held back by fees are weighed again


def rules_of(settings: Settings) -> Rules:
    """The payout rules the settings give."""
    return Rules(
        eth_threshold=settings.keeper_threshold_wei,
        gas_fraction=settings.keeper_gas_fraction,
        batch_gas=settings.keeper_batch_gas,
        token_thresholds=dict(settings.keeper_token_thresholds),
        token_prices=dict(settings.keeper_token_prices),
    )


@dataclass(frozen=True)
class KeeperResult:
    """What one keeper step did."""

    status: str  # "sending" (batches in flight), "sent", "idle"
    epoch: int | None = None
    batches: int = 0
    payees: int = 0
    detail: str = ""
    wait_until: int | None = None  # chain time a pending root becomes claimable
    next_at: float | None = None  # wall-clock time to weigh leaves held back by fees again


class Keeper:
    """Pays the claimable root's leaves with the keeper's key."""

    def __init__(
        self,
        db: Database,
        chain: Chain,
        settings: Settings,
        account: LocalAccount,
        wake: threading.Event | None = None,
    ) -> None:
        self.db = db
        self.chain = chain
        self.settings = settings
        self.account = account
        self.rules = rules_of(settings)
        self.replace_after = settings.tx_replace_after
        self.margin = settings.gas_limit_margin
        self.batches = Batches(db)
        self.sender = TransactionSender.for_settings(chain, account, settings)
        # Set by the indexer when chain events are committed (a root posted or activated).
        self.wake = wake if wake is not None else threading.Event()
        self.done: tuple[int, str] | None = None  # (epoch, root) whose due leaves are all settled
        self.recheck_at: float | None = None  # when to weigh leaves held back by fees again
        self.last_plan: Plan | None = None

    @property
    def max_fee(self) -> int:
        """The fee ceiling, wei per gas (`max_fee_gwei`)."""
        return self.sender.max_fee

    @max_fee.setter
    def max_fee(self, value: int) -> None:
        self.sender.max_fee = value

    def check(self) -> None:
        """Refuse to run with the oracle's account (they would fight over its nonces)."""
        oracle = to_checksum_address(self.chain.view("oracle"))
        if oracle == self.account.address:
            raise ConfigError(
                "the keeper's key is the contract's oracle: give the keeper an account of its own"
            )

    # ----- the loop -----

    def step(self, *, wait: bool = True) -> KeeperResult:
        """Follow the batches in flight; when none is, pay what the claimable root makes due."""
        self.wake.clear()  # before reading: whatever is committed after this wakes the next step
        in_flight = self._follow_all(wait=wait)
        if in_flight:
            return KeeperResult("sending", batches=in_flight, detail="payout batches are not mined yet")
        root, number = self.chain.view("activeRoot")
        root_hex = "0x" + bytes(root).hex()
        if number == 0:
            return KeeperResult("idle", detail="no root is claimable yet", wait_until=self._pending_at())
        recheck = self.recheck_at is not None and time.time() >= self.recheck_at
        if self.done == (number, root_hex) and not recheck:
            return KeeperResult(
                "idle",
                number,
                detail="paid what is due",
                wait_until=self._pending_at(),
                next_at=self.recheck_at,
            )
        with self.db.reader() as session:
            epoch = session.get(Epoch, int(number))
            if epoch is None or epoch.root != root_hex:
                log.warning("keeper: the claimable root (epoch %s) is not one this store computed", number)
                return KeeperResult("idle", number, detail="the claimable root is not ours")
            candidates = self._candidates(session, epoch)
        base_fee, tip = self.sender.fees_now()
        self.last_plan = planned = plan(candidates, self.rules, base_fee + tip)
        if not planned.batches:
            self.done = (epoch.number, epoch.root)
            # Leaves held back by today's fees are weighed again later, not only at the next root.
            self.recheck_at = time.time() + FEE_RECHECK if planned.too_costly else None
            return KeeperResult(
                "idle",
                epoch.number,
                detail=f"nothing due ({len(planned.below_threshold)} below the threshold, "
                f"{len(planned.too_costly)} too dear at {(base_fee + tip) / GWEI:.2f} gwei)",
                wait_until=self._pending_at(),
                next_at=self.recheck_at,
            )
        self._send(epoch, planned.batches)
        self._follow_all(wait=wait)
        return KeeperResult("sent", epoch.number, len(planned.batches), planned.payees)

    def run(self, stop: threading.Event) -> None:
        """Pay until `stop` is set, surviving chain and database outages; idle, it sleeps until
        the indexer commits something new or a pending root's delay runs out."""

        def step() -> bool:
            result = self.step()
            if result.status == "sent":
                log.info(
                    "keeper: epoch %s: %d payees in %d batches", result.epoch, result.payees, result.batches
                )
                return True
            if result.status == "idle":
                self._sleep(stop, result.wait_until, result.next_at)
                return True
            return False

        run_steps("keeper", stop, step, poll_interval=self.settings.poll_interval, expected=KeeperError)

    def _sleep(self, stop: threading.Event, wait_until: int | None, next_at: float | None) -> None:
        """Until `wake`, `stop`, a pending root's activation (chain time, read as wall time) or
        `next_at` (wall time)."""
        until = next_at
        if wait_until is not None:
            activation = time.time() + max(wait_until - self._chain_time(), 0) + 1
            until = activation if until is None else min(until, activation)
        while not stop.is_set() and not self.wake.is_set():
            if until is not None and time.time() >= until:
                return
            self.wake.wait(1.0)  # short slices so `stop` is seen; an Event costs no database work

    # ----- planning -----

    def _candidates(self, session: Session, epoch: Epoch) -> list[Candidate]:
        """The root's leaves with what their accounts claimed, confirmed on chain for those that
        may be due (the rest, below their threshold, as the store knows them); accounts whose
        automatic payments are blocked are left out."""
        leaves = session.execute(
            select(EpochLeaf.account, EpochLeaf.token, EpochLeaf.amount).where(
                EpochLeaf.epoch == epoch.number
            )
        ).tuples()
        known = self._known_claimed(session)
        maybe = []
        waiting = []  # below their threshold by what the store knows: not worth a chain read
        for account, token, amount in leaves:
            threshold = self.rules.threshold(token)
            already = known.get((account, token), 0)
            if threshold is not None and amount - already >= threshold:
                maybe.append((account, token, amount))
            elif amount > already:
                waiting.append(Candidate(account, token, amount, already))
        if not maybe:
            return waiting
        claimed = self._batch_calls([("claimed", (a, t)) for a, t, _ in maybe])
        accounts = sorted({a for a, _, _ in maybe})
        flags = self._batch_calls([("payoutBlocked", (a,)) for a in accounts])
        blocked = {a for a, flag in zip(accounts, flags, strict=True) if flag}
        return waiting + [
            Candidate(a, t, amount, c)
            for (a, t, amount), c in zip(maybe, claimed, strict=True)
            if a not in blocked and amount > c
        ]

    def _known_claimed(self, session: Session) -> dict[tuple[str, str], int]:
        """What the store knows was claimed: indexed `Claimed` events and its own paid leaves."""
        known: dict[tuple[str, str], int] = {}
        for raw in session.scalars(select(ChainEvent.args).where(ChainEvent.name == "Claimed")):
            args = json.loads(raw)
            key = (str(args["account"]).lower(), str(args["token"]).lower())
            known[key] = max(known.get(key, 0), int(args["cumulativeAmount"]))
        for account, token, cumulative in session.execute(
            select(PayoutLeaf.account, PayoutLeaf.token, PayoutLeaf.cumulative).where(
                PayoutLeaf.outcome == PayoutOutcome.PAID
            )
        ).tuples():
            known[(account, token)] = max(known.get((account, token), 0), cumulative)
        return known

    def _batch_calls(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Views returning one uint or bool, many to a JSON-RPC request; results as ints."""
        requests = [
            (
                "eth_call",
                [{"to": self.chain.address, "data": "0x" + self.chain.calldata(name, *args).hex()}, "latest"],
            )
            for name, args in calls
        ]
        results: list[int] = []
        for start in range(0, len(requests), _CALLS_PER_REQUEST):
            results.extend(int(r, 16) for r in self.chain.batch(requests[start : start + _CALLS_PER_REQUEST]))
        return results

    def _pending_at(self) -> int | None:
        """When a posted root becomes claimable (chain time), if one is waiting."""
        root, _epoch, active_at = self.chain.view("pendingRoot")
        return None if int.from_bytes(bytes(root), "big") == 0 else int(active_at)

    def _chain_time(self) -> int:
        block = self.chain.rpc("eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)

    # ----- sending -----

    def _send(self, epoch: Epoch, batches: list[Batch]) -> None:
        """Sign every batch (consecutive nonces, one offer), store them all, then broadcast them."""
        with self.db.reader() as session:
            tree = tree_of(session, epoch)
        offer = self.sender.first_offer()
        nonce = self.sender.next_nonce()
        rows: list[tuple[SignedTx, int, Batch]] = []
        need = 0
        for batch in batches:
            indices = []
            for payee in batch.payees:
                index = tree.find(payee.account, payee.token)
                if index is None:
                    raise KeeperError(f"{payee.account} has no leaf in epoch {epoch.number}'s tree")
                indices.append(index)
            multiproof = tree.multiproof(indices)
            leaves = [(leaf.account, leaf.token, leaf.cumulative_amount) for leaf in multiproof.leaves]
            data = self.chain.calldata("payout", leaves, multiproof.proof, multiproof.proof_flags)
            try:
                gas = self.chain.estimate_gas(self.account.address, data)
            except ContractRevert as exc:
                # The root changed under us (canceled, paused): plan again from what is claimable.
                self.done = None
                raise KeeperError(
                    f"epoch {epoch.number}'s payout would revert: {exc}; planning again"
                ) from None
            gas_limit = int(gas * self.margin)
            need += gas_limit * offer.max_fee
            rows.append((self.sender.sign_data(data, gas_limit, nonce=nonce, offer=offer), gas_limit, batch))
            nonce += 1
        balance = int(self.chain.rpc("eth_getBalance", [self.account.address, "latest"]), 16)
        if balance < need:
            # Signed and stored, they would wait in "sending" until someone funds the account.
            raise KeeperError(
                f"the keeper's account {self.account.address} holds {balance / 10**18:.6f} ETH, the "
                f"{len(rows)} batches due may cost {need / 10**18:.6f}: fund it"
            )
        self.batches.store(epoch, rows)
        crash_point("keeper", "payout-signed")
        for signed, _, _ in rows:
            self.sender.broadcast(signed.raw)
        log.info(
            "keeper: epoch %d: %d batches sent (%d payees)",
            epoch.number,
            len(rows),
            sum(len(b.payees) for _, _, b in rows),
        )
        crash_point("keeper", "payout-sent")

    # ----- following -----

    def _follow_all(self, *, wait: bool) -> int:
        """Follow every batch in flight, oldest nonce first; how many are still unmined."""
        return sum(1 for row in self.batches.in_flight() if not self._follow(row, wait=wait))

    def _follow(self, row: PayoutBatch, *, wait: bool) -> bool:
        """Drive one batch; whether it is settled (mined, reverted or dropped)."""
        followed = self.sender.follow(
            SignedTx(row.raw_tx, row.tx_hash, row.tx_nonce),
            stale=time.time() - row.updated_at >= self.replace_after,
            store=lambda signed: self._replaced(row, signed),
            prior=json.loads(row.prior_hashes),
            wait=wait,
        )
        if followed.lost:
            self.batches.mark(row.id, PayoutStatus.DROPPED, error="its nonce went to another transaction")
            log.warning(
                "keeper: batch %d dropped (nonce %d taken); its leaves are planned again",
                row.id,
                row.tx_nonce,
            )
            return True
        if followed.receipt is None:
            return False
        crash_point("keeper", "payout-mined")
        self._settle(row, followed.tx.hash, followed.receipt)
        return True

    def _replaced(self, row: PayoutBatch, signed: SignedTx) -> None:
        """Store a fee replacement (before the sender broadcasts it)."""
        self.batches.replace(row, signed)
        log.warning("keeper: batch %d's transaction is now %s", row.id, signed.hash)

    def _settle(self, row: PayoutBatch, tx_hash: str, receipt: dict[str, Any]) -> None:
        """Record a mined batch: which leaves it paid, skipped or failed to pay; or its revert."""
        block = int(receipt["blockNumber"], 16)
        if int(receipt["status"], 16) != 1:
            self.batches.mark(
                row.id, PayoutStatus.REVERTED, tx_hash=tx_hash, mined_block=block, error="reverted"
            )
            self.done = None
            log.warning("keeper: batch %d reverted in block %d; its leaves are planned again", row.id, block)
            return
        self.sender.wait_confirmations(block)
        outcomes: dict[tuple[str, str], PayoutOutcome] = {}
        for entry in receipt["logs"]:
            event = self.chain.codec.decode_log(entry)
            if event is None or event.name not in ("Claimed", "PayoutFailed"):
                continue
            key = (str(event.args["account"]).lower(), str(event.args["token"]).lower())
            outcomes[key] = PayoutOutcome.PAID if event.name == "Claimed" else PayoutOutcome.FAILED
        header = self.chain.headers([block])[block]
        gas_used = int(receipt["gasUsed"], 16)
        mined = Mined(
            tx_hash=tx_hash,
            block=block,
            block_time=header[1] if header is not None else int(time.time()),
            gas_used=gas_used,
            fee_paid=gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16),
            outcomes=outcomes,
        )
        paid = self.batches.mined(row.id, mined)
        log.info("keeper: batch %d mined in block %d (%d gas, %d paid)", row.id, block, gas_used, paid)
