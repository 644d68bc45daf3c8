"""Rewards: an account's earnings per token, and the proof to claim them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from backend.api.deps import ServicesDep, SessionDep
from backend.api.errors import documented
from backend.api.schemas import Address, ProofOut, RewardsOut, TokenRewardsOut
from backend.errors import NotFoundError
from backend.keeper.status import AutoPayout, auto_payouts
from backend.rewards import TokenRewards, claim_proof, rewards_of
from tracker.addresses import checksum

router = APIRouter(prefix="/accounts", tags=["rewards"])
AccountPath = Annotated[Address, Path(description="the seeder's address")]
TokenPath = Annotated[Address, Path(description="the token, 0x000...0 for ETH")]


@router.get("/{account}/rewards", response_model=RewardsOut, responses=documented(422, 502, 503))
def rewards(account: AccountPath, services: ServicesDep, session: SessionDep) -> RewardsOut:
    """Earned, in the active root, claimed, claimable now, pending a later root, and automatic
    payments (the last one; whether and when the keeper pays the rest); per token."""
    epoch, tokens = rewards_of(session, services.chain, account)
    keeper = services.keeper_account is not None
    auto = auto_payouts(session, services.chain, services.settings, account, tokens, keeper=keeper)
    return RewardsOut(
        account=checksum(account),
        active_epoch=epoch.number if epoch else None,
        tokens=[_token_out(t, auto[t.token]) for t in tokens],
    )


def _token_out(t: TokenRewards, auto: AutoPayout) -> TokenRewardsOut:
    return TokenRewardsOut(
        token=checksum(t.token),
        earned=str(t.earned),
        in_root=str(t.in_root),
        claimed=str(t.claimed),
        claimable=str(t.claimable),
        pending=str(t.pending),
        auto_pay=auto.state.value,
        auto_pay_threshold=None if auto.threshold is None else str(auto.threshold),
        auto_pay_expected_at=auto.expected_at,
        paid_automatically_at=auto.paid_at,
        paid_automatically_tx=auto.paid_tx,
        paid_automatically_amount=None if auto.paid_amount is None else str(auto.paid_amount),
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
