"""The oracle's decisions: when to close an epoch, what to post for it, and what a transaction's
fate means for the epoch; the transactions themselves go through backend.oracle.sender.

Posting is a small state machine kept in the `epochs` table. A closed epoch is signed into a
raw transaction that is stored (status "sending") before it is broadcast; after a crash the next
run finds it and asks the chain: posted already? mined and reverted? still pending? never seen?
(then the same raw transaction is broadcast again). A transaction still unmined after
`tx_replace_after` seconds (fees rose) is replaced: the same call with the same nonce and fees at
least 12.5 % higher (never above `max_fee_gwei`), stored before it is broadcast; whichever of the
two is mined posts the root. The epoch number is fixed when the epoch is closed and the contract
takes only its last one + 1, so a root is posted once, never twice. Totals are
checked against the contract's funded seeder pools before anything is signed; a pending root that
is not active yet (`RootPending`) is waited out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from sqlalchemy import delete, select

from backend.chain import Chain
from backend.db import Database
from backend.epochs import close_epoch, latest_epoch
from backend.errors import ConfigError, ContractRevert, OracleError
from backend.models import (
    UNFINISHED,
    ChainEvent,
    Epoch,
    EpochLeaf,
    EpochStatus,
    FrozenPurchase,
    IndexerCursor,
    Purchase,
)
from backend.oracle.loop import crash_point, run_steps
from backend.oracle.sender import SignedTx, TransactionSender
from backend.settings import Settings

log = logging.getLogger(__name__)

# Refusals after which the same epoch can never be posted: a later epoch takes over.
_TERMINAL = {"EpochNotNext", "TotalExceedsFunded", "TotalDecreased", "NotOracle"}


@dataclass(frozen=True)
class StepResult:
    """What one oracle step did: `status` is the epoch's status, or idle/waiting."""

    status: str
    epoch: int | None = None
    detail: str = ""
    wait_until: int | None = None  # chain time a pending root becomes active
    next_at: float | None = None  # idle: when the next epoch is due (wall clock)
    wakeable: bool = False  # idle: new receipts or chain events may make it worth trying sooner


class Oracle:
    """Closes epochs from the database and posts them with the oracle's key."""

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
        self.store_account = (settings.store_account or account.address).lower()
        self.replace_after = settings.tx_replace_after
        self.sender = TransactionSender.for_settings(chain, account, settings)
        # Set by the receipt sink and the indexer when something new is committed.
        self.wake = wake if wake is not None else threading.Event()
        # After an epoch found nothing new to post: wall-clock time until which the oracle stays
        # quiet unless woken (None: no such epoch since the last one closed).
        self.quiet_until: float | None = None
        self.closes = 0  # close attempts (each one settles the whole cut)

    @property
    def max_fee(self) -> int:
        """The fee ceiling, wei per gas (`max_fee_gwei`)."""
        return self.sender.max_fee

    @max_fee.setter
    def max_fee(self, value: int) -> None:
        self.sender.max_fee = value

    def check(self) -> None:
        """Refuse to run with a key that is not the contract's oracle."""
        oracle = self.chain.view("oracle")
        if to_checksum_address(oracle) != self.account.address:
            raise ConfigError(f"{self.account.address} is not the contract's oracle ({oracle}); fix the key")

    # ----- the loop -----

    def step(self, *, force: bool = False, wait: bool = True) -> StepResult:
        """Finish an unfinished epoch, or close a new one when due (or forced) and post it.

        A due epoch that finds nothing new to post is not tried again (each try settles the whole
        cut, and on PostgreSQL locks the receipts) until the next epoch boundary or until `wake`
        says new receipts or chain events were committed."""
        woken = self.wake.is_set()
        self.wake.clear()  # before reading: whatever is committed after this wakes the next step
        self._reconcile_cancellations()
        with self.db.reader() as session:
            unfinished = latest_epoch(session, UNFINISHED)
            last = latest_epoch(session, tuple(EpochStatus))
        if unfinished is None:
            now = time.time()
            due_at = 0.0 if last is None else float(last.created_at + self.settings.epoch_length)
            if not force and now < due_at:
                return StepResult("idle", detail="the next epoch is not due yet", next_at=due_at)
            quiet = self.quiet_until
            if not (force or woken) and quiet is not None and now < quiet:
                return StepResult(
                    "idle", detail="nothing new since the last try", next_at=quiet, wakeable=True
                )
            pending = self._pending_until()
            if pending is not None:
                return StepResult("waiting", detail="a posted root is not active yet", wait_until=pending)
            number = self._next_number()
            self.closes += 1
            epoch = close_epoch(
                self.db,
                number,
                settle_after=self.settings.settle_after,
                store_account=self.store_account,
                data_uri=f"{self.settings.public_url}/epochs/{number}/data",
            )
            if epoch is None:
                self.quiet_until = now + self.settings.epoch_length
                return StepResult(
                    "idle", detail="nothing new to post", next_at=self.quiet_until, wakeable=True
                )
            self.quiet_until = None
            crash_point("oracle", "closed")
            unfinished = epoch
        return self.post(unfinished.number, wait=wait)

    def run(self, stop: threading.Event) -> None:
        """Close and post epochs until `stop` is set, surviving chain and database outages.

        Idle, it sleeps until the next epoch is due or `wake` is set, not polling the database."""

        def step() -> bool:
            result = self.step()
            if result.status == EpochStatus.POSTED:
                log.info("oracle: epoch %s posted", result.epoch)
            if result.status == "idle" and result.next_at is not None:
                self._sleep(stop, result.next_at, wakeable=result.wakeable)
                return True
            return False

        run_steps("oracle", stop, step, poll_interval=self.settings.poll_interval, expected=OracleError)

    def _sleep(self, stop: threading.Event, until: float, *, wakeable: bool) -> None:
        """Wait until wall-clock `until` or `stop`, or `wake` when that could change anything
        (not before an epoch is due: receipts arriving then wait for the boundary anyway)."""
        while not stop.is_set() and not (wakeable and self.wake.is_set()):
            left = until - time.time()
            if left <= 0:
                return
            # Short slices so `stop` is seen too; waiting on an Event costs no database work.
            (self.wake if wakeable else stop).wait(min(left, 1.0))

    # ----- posting -----

    def post(self, number: int, *, wait: bool = True) -> StepResult:
        """Drive epoch `number` towards "posted"."""
        with self.db.reader() as session:
            epoch = session.get(Epoch, number)
        if epoch is None:
            raise OracleError(f"there is no epoch {number}")
        if epoch.status == EpochStatus.SENDING:
            result = self._recover(epoch, wait=wait)
            if result is not None:
                return result
            with self.db.reader() as session:
                epoch = session.get(Epoch, number)
            assert epoch is not None
        if epoch.status != EpochStatus.CLOSED:
            return StepResult(epoch.status, number, epoch.error or "")
        pending = self._pending_until()
        if pending is not None:
            return StepResult("waiting", number, "a posted root is not active yet", wait_until=pending)
        self._sign_and_store(epoch)
        crash_point("oracle", "signed")
        with self.db.reader() as session:
            epoch = session.get(Epoch, number)
        assert epoch is not None and epoch.raw_tx is not None
        self.sender.broadcast(epoch.raw_tx)
        crash_point("oracle", "sent")
        return self._await(epoch, wait=wait)

    def _sign_and_store(self, epoch: Epoch) -> None:
        tokens, totals = self._tokens_and_totals(epoch)
        function = self.chain.contract.functions.postRoot(
            bytes.fromhex(epoch.root[2:]), epoch.number, tokens, totals, epoch.data_uri
        )
        try:
            gas = self.chain.call(lambda: function.estimate_gas({"from": self.account.address}))
        except ContractRevert as exc:
            self._refused(epoch, exc)
            raise OracleError(f"epoch {epoch.number}: {exc}") from None
        signed = self.sender.sign(function, int(gas * self.settings.gas_limit_margin))
        with self.db.writer() as session:
            row = session.get(Epoch, epoch.number)
            assert row is not None
            if row.status != EpochStatus.CLOSED:
                raise OracleError(f"epoch {epoch.number} changed state under us ({row.status})")
            row.move_to(EpochStatus.SENDING)
            row.raw_tx = signed.raw
            row.tx_hash = signed.hash
            row.tx_nonce = signed.nonce
            row.tx_tokens = json.dumps([t.lower() for t in tokens])
            row.error = None
        log.info("oracle: epoch %d signed as %s (nonce %d)", epoch.number, signed.hash, signed.nonce)

    def _await(self, epoch: Epoch, *, wait: bool) -> StepResult:
        assert epoch.tx_hash is not None
        receipt = self.sender.await_receipt(epoch.tx_hash, wait=wait)
        if receipt is None:
            return StepResult(EpochStatus.SENDING, epoch.number, f"waiting for {epoch.tx_hash} to be mined")
        return self._settle_receipt(epoch, receipt)

    def _settle_receipt(self, epoch: Epoch, receipt: dict[str, Any]) -> StepResult:
        block = int(receipt["blockNumber"], 16)
        if int(receipt["status"], 16) == 1:
            posted = [
                e
                for e in (self.chain.codec.decode_log(entry) for entry in receipt["logs"])
                if e is not None and e.name == "RootPosted"
            ]
            if not posted or posted[0].args["epoch"] != epoch.number or posted[0].args["root"] != epoch.root:
                raise OracleError(f"transaction {epoch.tx_hash} did not post epoch {epoch.number}'s root")
            self.sender.wait_confirmations(block)
            self._mark(
                epoch.number,
                EpochStatus.POSTED,
                posted_block=block,
                active_at=int(posted[0].args["activeAt"]),
            )
            log.info("oracle: epoch %d posted in block %d", epoch.number, block)
            return StepResult(EpochStatus.POSTED, epoch.number)
        # Reverted: find out why by simulating the same call now.
        reason = "reverted"
        try:
            tokens = json.loads(epoch.tx_tokens or "[]")
            totals_map = json.loads(epoch.totals)
            totals = [int(totals_map.get(t, "0")) for t in tokens]
            function = self.chain.contract.functions.postRoot(
                bytes.fromhex(epoch.root[2:]),
                epoch.number,
                [to_checksum_address(t) for t in tokens],
                totals,
                epoch.data_uri,
            )
            self.chain.call(lambda: function.call({"from": self.account.address}))
        except ContractRevert as exc:
            reason = exc.error
            if self._refused(epoch, exc):
                return StepResult(EpochStatus.FAILED, epoch.number, str(exc))
        self._mark(epoch.number, EpochStatus.CLOSED, error=f"transaction reverted ({reason}); will retry")
        return StepResult(EpochStatus.CLOSED, epoch.number, f"transaction reverted ({reason}); will retry")

    def _recover(self, epoch: Epoch, *, wait: bool) -> StepResult | None:
        """After a crash in "sending": None when the epoch went back to "closed" (sign again)."""
        assert epoch.tx_hash is not None and epoch.raw_tx is not None
        if self._posted_on_chain(epoch):
            self._mark(epoch.number, EpochStatus.POSTED)
            return StepResult(EpochStatus.POSTED, epoch.number, "found on chain")
        assert epoch.tx_nonce is not None
        followed = self.sender.follow(
            SignedTx(epoch.raw_tx, epoch.tx_hash, epoch.tx_nonce),
            # Unmined for long (fees rose, or a node dropped it as underpriced): raise the fees.
            stale=time.time() - epoch.updated_at >= self.replace_after,
            store=lambda signed: self._store_replacement(epoch, signed),
            wait=wait,
        )
        if followed.lost:
            # Our nonce went to another transaction and ours never posted: sign anew.
            self._mark(epoch.number, EpochStatus.CLOSED, error="transaction replaced; signing again")
            return None
        if followed.receipt is None:
            detail = f"waiting for {followed.tx.hash} to be mined"
            return StepResult(EpochStatus.SENDING, epoch.number, detail)
        result = self._settle_receipt(epoch, followed.receipt)
        return None if result.status == EpochStatus.CLOSED else result

    def _store_replacement(self, epoch: Epoch, signed: SignedTx) -> None:
        """Store a fee replacement of the epoch's transaction (before the sender broadcasts it)."""
        with self.db.writer() as session:
            row = session.get(Epoch, epoch.number)
            assert row is not None
            if row.status != EpochStatus.SENDING or row.tx_hash != epoch.tx_hash:
                raise OracleError(f"epoch {epoch.number} changed state under us ({row.status})")
            row.move_to(EpochStatus.SENDING)
            row.raw_tx = signed.raw
            row.tx_hash = signed.hash
        log.warning("oracle: epoch %d's transaction is now %s", epoch.number, signed.hash)

    def _posted_on_chain(self, epoch: Epoch) -> bool:
        topic_epoch = "0x" + epoch.number.to_bytes(32, "big").hex()
        # It cannot have been posted before it was closed, and it was closed at `block_number`.
        first = max(epoch.block_number - self.settings.confirmations, 0)
        raw = self.chain.rpc(
            "eth_getLogs",
            [
                {
                    "address": self.chain.address,
                    "fromBlock": hex(first),
                    "toBlock": "latest",
                    "topics": [self.chain.codec.topic("RootPosted"), topic_epoch],
                }
            ],
        )
        for entry in raw or []:
            event = self.chain.codec.decode_log(entry)
            if event is not None and event.args["root"] == epoch.root:
                return True
        return False

    def _refused(self, epoch: Epoch, exc: ContractRevert) -> bool:
        """Mark the epoch failed when the contract can never accept it; whether it did."""
        if exc.error not in _TERMINAL:
            return False
        if exc.error == "EpochNotNext" and self._posted_on_chain(epoch):
            self._mark(epoch.number, EpochStatus.POSTED)
            return True
        self._mark(epoch.number, EpochStatus.FAILED, error=str(exc))
        log.error("oracle: epoch %d can never be posted: %s", epoch.number, exc)
        return True

    # ----- chain facts -----

    def _tokens_and_totals(self, epoch: Epoch) -> tuple[list[str], list[int]]:
        """All funded tokens in ascending order with this epoch's totals, checked against the pools."""
        count = int(self.chain.view("fundedTokenCount"))
        with self.db.reader() as session:
            known = set(
                session.scalars(select(Purchase.token).distinct().where(Purchase.seeder_pool != 0)).all()
            )
            cursor = session.get(IndexerCursor, 1)
        if len(known) < count and cursor is not None:
            # Tokens first funded in blocks the indexer has not confirmed yet.
            for event in self.chain.logs(cursor.block_number + 1, self.chain.head()):
                if event.name == "Purchased" and int(event.args["seederPool"]) > 0:
                    known.add(event.args["token"])
        if len(known) != count:
            raise OracleError(
                f"the contract has {count} funded tokens, the store knows {len(known)}: wait for the indexer"
            )
        totals_map = {t: int(v) for t, v in json.loads(epoch.totals).items()}
        unknown = set(totals_map) - known
        if unknown:
            raise OracleError(
                f"epoch {epoch.number} pays tokens the contract never funded: {sorted(unknown)}"
            )
        tokens = sorted(known)
        totals = [totals_map.get(t, 0) for t in tokens]
        for token, total in zip(tokens, totals, strict=True):
            funded, _claimed = self.chain.view("seederPool", to_checksum_address(token))
            if total > funded:
                raise OracleError(
                    f"epoch {epoch.number} promises {total} of {token} but only {funded} was funded; refusing"
                )
        return [to_checksum_address(t) for t in tokens], totals

    def _pending_until(self) -> int | None:
        """The activation time of a pending root that blocks posting, or None."""
        root, _epoch, active_at = self.chain.view("pendingRoot")
        if int.from_bytes(bytes(root), "big") == 0:
            return None
        return int(active_at)

    def _next_number(self) -> int:
        """The chain's last epoch + 1, the only one it accepts. An epoch stored under that number
        was refused for good and never reached the chain: its rows make way."""
        number = int(self.chain.view("lastEpoch")) + 1
        with self.db.writer() as session:
            stale = session.get(Epoch, number)
            if stale is not None and stale.status != EpochStatus.FAILED:
                raise OracleError(f"epoch {number} is stored as {stale.status} but the chain has not seen it")
            if stale is not None:
                log.warning("oracle: epoch %d failed without reaching the chain; closing it again", number)
                session.execute(delete(EpochLeaf).where(EpochLeaf.epoch == number))
                session.execute(delete(FrozenPurchase).where(FrozenPurchase.epoch == number))
                session.delete(stale)
        return number

    def _reconcile_cancellations(self) -> None:
        with self.db.reader() as session:
            canceled = [
                json.loads(a)
                for a in session.scalars(select(ChainEvent.args).where(ChainEvent.name == "RootCanceled"))
            ]
        for event in canceled:
            with self.db.writer() as session:
                epoch = session.get(Epoch, int(event["epoch"]))
                if epoch is not None and epoch.status == EpochStatus.POSTED and epoch.root == event["root"]:
                    epoch.move_to(EpochStatus.CANCELED)
                    log.warning("oracle: epoch %d was canceled by the guardian", epoch.number)

    def _mark(self, number: int, status: EpochStatus, *, error: str | None = None, **fields: int) -> None:
        with self.db.writer() as session:
            row = session.get(Epoch, number)
            assert row is not None
            row.move_to(status)
            row.error = error
            for name, value in fields.items():
                setattr(row, name, value)
