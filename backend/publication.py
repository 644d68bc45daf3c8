"""An epoch's publication: everything anyone needs to recompute its root from the chain.

One model for the three places that meet it: the oracle builds it when an epoch closes
(`backend.epochs.publication`), the API serves it (`GET /epochs/{n}/data`) and `seedmarket
verify-epoch` validates what it downloaded before recomputing (`backend.audit`). The field names are
the wire format (camelCase, as in the JSON) and docs/ARCHITECTURE.md describes it.

Light on purpose: pydantic only, so the audit loads it without the database layer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.errors import AuditError

PUBLICATION_FORMAT = "seedmarket-epoch-v2"
FORMATS = ("seedmarket-epoch-v1", PUBLICATION_FORMAT)  # v1: every purchase and receipt ever

_HEX = r"^0x[0-9a-fA-F]*$"
Address = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


class PublishedKey(BaseModel):
    """A buyer's delegation of receipt signing to a session key, as signed."""

    key: str = Address
    expires: int
    sig: str = Field(pattern=_HEX)


class PublishedReceipt(BaseModel):
    """A receipt behind an epoch, as signed, with what was credited for it and when it arrived."""

    purchase: int
    seeder: str = Address
    bytes: int
    sig: str = Field(pattern=_HEX)
    credited: int
    acceptedAt: int
    key: PublishedKey | None = None


class FrozenEntry(BaseModel):
    """A purchase past its settlement window, and who got the part of its pool nobody earned."""

    purchase: int
    recipient: str = Address


class SettledTotals(BaseModel):
    """What the purchases frozen as of an epoch paid out (`backend.settlement.Settled.document`):
    every purchase below `openFrom` and those in `frozenAbove` are in `totals`."""

    epoch: int
    openFrom: int
    frozenAbove: list[int]
    totals: list[tuple[str, str, str]]  # [account, token, decimal amount], lowercase


class TreeDump(BaseModel):
    """The `@openzeppelin/merkle-tree` dump (`StandardMerkleTree.load` reads it)."""

    model_config = ConfigDict(extra="allow")

    format: str
    leafEncoding: list[str]
    tree: list[str]
    values: list[dict[str, Any]]


class Publication(BaseModel):
    """Everything `seedmarket verify-epoch` needs to recompute an epoch's root from the chain.

    v2 carries the epoch's delta: `base` is the settled totals of the epoch it builds on (their
    digest is that epoch's `settled`, repeated here as `previous`), `frozen` and `receipts` are
    those of the purchases not in `base`, and `settled` is the digest of this epoch's own settled
    totals, which the next epoch names as `previous`. v1 (no `base`) carried all history."""

    format: Literal["seedmarket-epoch-v1", "seedmarket-epoch-v2"]
    epoch: int
    chainId: int
    contract: str = Address
    root: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    cutoff: int
    block: int
    settleAfter: int
    storeAccount: str = Address
    totals: dict[str, str]
    frozen: list[FrozenEntry]
    tree: TreeDump
    receipts: list[PublishedReceipt]
    base: SettledTotals | None = None
    previous: str | None = Field(default=None, pattern=r"^0x[0-9a-f]{64}$")
    settled: str | None = Field(default=None, pattern=r"^0x[0-9a-f]{64}$")

    def document(self) -> dict[str, Any]:
        """The JSON document as served: a receipt without a delegation has no `key` field."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_publication(document: Any) -> Publication:
    """A downloaded or saved publication validated; AuditError naming the first problem otherwise."""
    if not isinstance(document, dict) or document.get("format") not in FORMATS:
        raise AuditError(f"not a {' or '.join(FORMATS)} publication")
    try:
        return Publication.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AuditError(f"malformed publication: {where}: {first['msg']}") from None
