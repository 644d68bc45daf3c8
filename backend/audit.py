"""Auditing an epoch: recompute its root from the chain, the published receipts and the settled
totals of the epoch it builds on.

What the store publishes for epoch N (`GET /epochs/N/data`) is checked against facts nobody
but the chain vouches for: every purchase (buyer, token, seeder pool) and every product's
length come from the Marketplace's events; every receipt's signatures are verified again and
must be the buyer's; credits must not exceed what was signed nor a purchase's length; frozen
purchases must really be past their window. Settlement is then recomputed with the same code
the oracle runs, and the root compared with the published one and the one posted on chain.

A v2 publication carries only the epoch's delta: the purchases settled before are in the carried
totals of the epoch it builds on, whose digest must be the one that epoch published as `settled`
(the hash chain, `check_chain`); so one epoch checks without all history, and an auditor who
checks every epoch as it comes has checked them all.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from backend.chain import Chain, DecodedLog
from backend.errors import AuditError
from backend.merkle import MerkleError, MerkleTree
from backend.publication import Publication, parse_publication
from backend.settlement import (
    EMPTY,
    PurchaseTerms,
    Settled,
    add_into,
    advance,
    build_tree,
    digest_of,
    settle,
    token_totals,
)
from tracker.receipts import Domain, ReceiptError, ReceiptVerifier, from_message, to_hex_address

_LOG_CHUNK = 5000
_HEADER_CHUNK = 500


@dataclass
class AuditReport:
    """What the audit found; `ok` when the recomputed root is the published and posted one."""

    epoch: int
    published_root: str
    recomputed_root: str | None = None
    posted_root: str | None = None
    canceled: bool = False
    purchases: int = 0
    receipts: int = 0
    leaves: int = 0
    base_epoch: int = 0  # the epoch whose settled totals it builds on (0: none)
    settled: str | None = None  # the recomputed digest of its own settled totals
    chained: bool | None = None  # whether the base is what that epoch published (None: not checked)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything checks out."""
        return (
            not self.problems
            and self.recomputed_root == self.published_root
            and self.posted_root == self.published_root
        )

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-friendly data."""
        return {
            "epoch": self.epoch,
            "ok": self.ok,
            "publishedRoot": self.published_root,
            "recomputedRoot": self.recomputed_root,
            "postedRoot": self.posted_root,
            "canceled": self.canceled,
            "purchases": self.purchases,
            "receipts": self.receipts,
            "leaves": self.leaves,
            "baseEpoch": self.base_epoch,
            "settled": self.settled,
            "chained": self.chained,
            "problems": self.problems,
        }


def fetch_publication(store_url: str, number: int, timeout: float = 60.0) -> dict[str, Any]:
    """Download epoch `number`'s publication from a store."""
    url = f"{store_url.rstrip('/')}/epochs/{number}/data"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise AuditError(f"cannot reach {url}: {type(exc).__name__}") from None
    if response.status_code == 404:
        raise AuditError(f"the store has no epoch {number}")
    if response.status_code != 200:
        raise AuditError(f"{url} answered HTTP {response.status_code}")
    try:
        document: dict[str, Any] = response.json()
    except ValueError:
        raise AuditError(f"{url} did not answer JSON") from None
    return document


def _chunks(first: int, last: int, size: int) -> Iterator[tuple[int, int]]:
    start = first
    while start <= last:
        yield start, min(start + size - 1, last)
        start += size


def _events(chain: Chain, first: int, last: int) -> list[DecodedLog]:
    events: list[DecodedLog] = []
    for start, end in _chunks(first, last, _LOG_CHUNK):
        events.extend(chain.logs(start, end))
    return events


def _timestamps(chain: Chain, numbers: set[int]) -> dict[int, int]:
    ordered = sorted(numbers)
    times: dict[int, int] = {}
    for i in range(0, len(ordered), _HEADER_CHUNK):
        for number, header in chain.headers(ordered[i : i + _HEADER_CHUNK]).items():
            if header is None:
                raise AuditError(f"block {number} is not on the chain")
            times[number] = header[1]
    return times


def audit_epoch(
    document: Publication | dict[str, Any], chain: Chain, deployment_block: int = 0
) -> AuditReport:
    """Recompute a published epoch against `chain`."""
    published = document if isinstance(document, Publication) else parse_publication(document)
    number, root = published.epoch, published.root.lower()
    block, cutoff, settle_after = published.block, published.cutoff, published.settleAfter
    store_account = published.storeAccount.lower()
    frozen = {f.purchase: f.recipient.lower() for f in published.frozen}
    chain_id, contract = published.chainId, published.contract
    report = AuditReport(number, root)
    if chain_id != chain.chain_id or contract.lower() != chain.address.lower():
        raise AuditError(
            f"the publication is for {contract} on chain {chain_id}, not this chain's Marketplace"
        )

    base = _base(report, published)
    events = _events(chain, deployment_block, chain.head())
    _check_posting(report, events, number)
    sizes = {int(e.args["productId"]): int(e.args["size"]) for e in events if e.name == "ProductListed"}
    bought = [e for e in events if e.name == "Purchased" and e.block_number <= block]
    times = _timestamps(chain, {e.block_number for e in bought} | {block})
    if times[block] != cutoff:
        report.problems.append(f"cutoff {cutoff} is not the timestamp of block {block} ({times[block]})")
    terms: dict[int, PurchaseTerms] = {}
    highest: int | None = None
    for event in bought:
        a = event.args
        pid = int(a["purchaseId"])
        if pid >= base.open_from:
            highest = pid if highest is None else max(highest, pid)
        if base.covers(pid):
            continue  # settled before: its payout is in the base totals
        terms[pid] = PurchaseTerms(
            pid,
            a["buyer"],
            a["token"],
            int(a["seederPool"]),
            sizes[int(a["productId"])],
            pid in frozen,
            frozen.get(pid, ""),
        )
        if pid in frozen and times[event.block_number] > cutoff - settle_after:
            report.problems.append(f"purchase {pid} was frozen before its settlement window passed")
    for pid in set(frozen) - set(terms):
        report.problems.append(f"frozen purchase {pid} is not on the chain or was settled before")
    report.purchases = len(terms)

    receipts = [r.model_dump(exclude_none=True) for r in published.receipts]
    credits = _check_receipts(report, receipts, terms, ReceiptVerifier(_domain(chain)))
    frozen_terms = {pid: t for pid, t in terms.items() if t.frozen}
    open_terms = {pid: t for pid, t in terms.items() if not t.frozen}
    payouts = settle(frozen_terms, (c for c in credits if c[0] in frozen_terms), store_account)
    lowest_open = min(open_terms, default=None)
    settled = advance(base, number, (highest, lowest_open), frozen_terms, payouts)
    if published.settled is not None and settled.digest() != published.settled:
        report.problems.append("the published settled totals' digest is not the recomputed one")
    report.settled = settled.digest()
    earnings = dict(settled.totals)
    add_into(earnings, settle(open_terms, (c for c in credits if c[0] in open_terms), store_account))
    _compare(report, published, earnings)
    return report


def _compare(report: AuditReport, published: Publication, earnings: dict[tuple[str, str], int]) -> None:
    """The recomputed tree and per-token totals against the published ones."""
    tree = build_tree(earnings)
    report.recomputed_root = None if tree is None else "0x" + tree.root.hex()
    report.leaves = 0 if tree is None else len(tree.leaves)
    try:
        if "0x" + MerkleTree.load(published.tree.model_dump()).root.hex() != report.published_root:
            report.problems.append("the published tree's root is not the published root")
    except MerkleError as exc:
        report.problems.append(f"the published tree is not a valid tree: {exc}")
    totals = {t: str(v) for t, v in token_totals(earnings).items()}
    published_totals = {t.lower(): v for t, v in published.totals.items()}
    if totals != published_totals:
        report.problems.append("the published per-token totals are not the recomputed ones")


def _base(report: AuditReport, published: Publication) -> Settled:
    """The settled totals the epoch builds on, checked against the digest it names."""
    if published.base is None:
        if published.previous is not None:
            report.problems.append("the publication names a previous epoch's totals but does not carry them")
        return EMPTY
    document = published.base.model_dump()
    report.base_epoch = published.base.epoch
    if digest_of(document) != published.previous:
        report.problems.append("the carried totals are not the ones the publication names as previous")
    if published.base.epoch >= published.epoch:
        report.problems.append(f"epoch {published.epoch} cannot build on epoch {published.base.epoch}")
    try:
        return Settled.from_document(document)
    except (KeyError, TypeError, ValueError) as exc:
        report.problems.append(f"the carried totals are malformed: {exc}")
        return EMPTY


def check_chain(report: AuditReport, published: Publication, previous: Publication) -> None:
    """The hash chain: the totals epoch N builds on are the ones epoch M's publication settled."""
    if published.base is None:
        return
    if previous.epoch != published.base.epoch:
        raise AuditError(f"that is not a publication of epoch {published.base.epoch}")
    report.chained = previous.settled is not None and previous.settled == published.previous
    if not report.chained:
        report.problems.append(
            f"epoch {published.epoch} builds on totals epoch {previous.epoch} did not publish as settled"
        )


def _domain(chain: Chain) -> Domain:
    return Domain(chain.chain_id, bytes.fromhex(chain.address[2:]))


def _check_posting(report: AuditReport, events: list[DecodedLog], number: int) -> None:
    for event in events:
        if event.name == "RootPosted" and int(event.args["epoch"]) == number:
            report.posted_root = str(event.args["root"]).lower()
        if event.name == "RootCanceled" and int(event.args["epoch"]) == number:
            report.canceled = True
    if report.posted_root is None:
        report.problems.append(f"epoch {number} was never posted on chain")


def _check_receipts(
    report: AuditReport, published: list[Any], terms: dict[int, PurchaseTerms], verifier: ReceiptVerifier
) -> list[tuple[int, str, int]]:
    credits: list[tuple[int, str, int]] = []
    per_purchase: dict[int, int] = defaultdict(int)
    seen: set[tuple[int, str]] = set()
    for index, entry in enumerate(published):
        try:
            signed = from_message(entry)
            credited = int(entry["credited"])
            verified = verifier.verify(signed, now=float(entry["acceptedAt"]))
        except (ReceiptError, KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"receipt #{index} does not verify: {exc}")
            continue
        receipt = signed.receipt
        purchase = terms.get(receipt.purchase_id)
        seeder = to_hex_address(receipt.seeder)
        if purchase is None:
            report.problems.append(f"receipt #{index} names purchase {receipt.purchase_id}, not on the chain")
            continue
        if to_hex_address(verified.signer) != purchase.buyer:
            continue  # signed by a former buyer of a reorganised purchase id: it counts for nothing
        if not 0 <= credited <= receipt.byte_count:
            report.problems.append(
                f"receipt #{index} is credited {credited} of {receipt.byte_count} signed bytes"
            )
            continue
        if (receipt.purchase_id, seeder) in seen:
            report.problems.append(
                f"receipt #{index} repeats purchase {receipt.purchase_id} and seeder {seeder}"
            )
            continue
        seen.add((receipt.purchase_id, seeder))
        per_purchase[receipt.purchase_id] += credited
        credits.append((receipt.purchase_id, seeder, credited))
        report.receipts += 1
    for pid, total in per_purchase.items():
        if total > terms[pid].size:
            report.problems.append(f"purchase {pid} is credited {total} bytes of {terms[pid].size}")
    return credits


def render(report: AuditReport) -> str:
    """A short human summary."""
    lines = [
        f"epoch {report.epoch}: {'OK' if report.ok else 'MISMATCH'}",
        f"  published root   {report.published_root}",
        f"  recomputed root  {report.recomputed_root}",
        f"  posted on chain  {report.posted_root}{' (canceled)' if report.canceled else ''}",
        f"  {report.purchases} purchases, {report.receipts} receipts, {report.leaves} leaves",
    ]
    if report.base_epoch:
        link = {None: "not checked", True: "checked", False: "BROKEN"}[report.chained]
        lines.append(f"  built on epoch {report.base_epoch}'s settled totals (hash chain {link})")
    lines += [f"  problem: {p}" for p in report.problems]
    return "\n".join(lines)


def as_json(report: AuditReport) -> str:
    """The report as one JSON line."""
    return json.dumps(report.as_dict())
