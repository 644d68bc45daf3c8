"""Rewards: an account's earnings per token, and the proof to claim them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from backend.api.deps import ServicesDep, SessionDep
from backend.api.errors import documented
from backend.api.schemas import Address, ProofOut, RewardsOut, TokenRewardsOut
from backend.errors import NotFoundError
from backend.rewards import claim_proof, rewards_of
from tracker.addresses import checksum

router = APIRouter(prefix="/accounts", tags=["rewards"])
AccountPath = Annotated[Address, Path(description="the seeder's address")]
TokenPath = Annotated[Address, Path(description="the token, 0x000...0 for ETH")]


@router.get("/{account}/rewards", response_model=RewardsOut, responses=documented(422, 502, 503))
def rewards(account: AccountPath, services: ServicesDep, session: SessionDep) -> RewardsOut:
    """Earned, in the active root, claimed, claimable now, and pending a later root; per token."""
    epoch, tokens = rewards_of(session, services.chain, account)
    return RewardsOut(
        account=checksum(account),
        active_epoch=epoch.number if epoch else None,
        tokens=[
            TokenRewardsOut(
                token=checksum(t.token),
                earned=str(t.earned),
                in_root=str(t.in_root),
                claimed=str(t.claimed),
                claimable=str(t.claimable),
                pending=str(t.pending),
            )
            for t in tokens
        ],
    )


@router.get(
    "/{account}/rewards/{token}/proof", response_model=ProofOut, responses=documented(404, 422, 502, 503)
)
def proof(account: AccountPath, token: TokenPath, services: ServicesDep, session: SessionDep) -> ProofOut:
    """The leaf and proof for `claim(account, token, cumulativeAmount, proof)` against the active root."""
    found = claim_proof(session, services.chain, account, token)
    if found is None:
        raise NotFoundError("no leaf for this account and token in the active root")
    return ProofOut(
        account=checksum(found.account),
        token=checksum(found.token),
        cumulative_amount=str(found.cumulative_amount),
        proof=found.proof,
        root=found.root,
        epoch=found.epoch,
    )
