"""The oracle's pure rules without a chain: fee offers and the epoch status machine."""

from __future__ import annotations

import pytest

from backend.errors import OracleError
from backend.models import EPOCH_TRANSITIONS, Epoch, EpochStatus
from backend.oracle.fees import Offer, bumped, first_offer, replacement_offer

GWEI = 10**9


def test_a_first_offer_is_twice_the_base_fee_plus_the_tip() -> None:
    assert first_offer(10 * GWEI, 2 * GWEI, 100 * GWEI) == Offer(22 * GWEI, 2 * GWEI)


def test_a_first_offer_never_crosses_the_ceiling_and_neither_does_its_tip() -> None:
    assert first_offer(10 * GWEI, 2 * GWEI, 15 * GWEI) == Offer(15 * GWEI, 2 * GWEI)
    assert first_offer(10 * GWEI, 30 * GWEI, 15 * GWEI) == Offer(15 * GWEI, 15 * GWEI)


def test_a_replacement_raises_both_fees_by_more_than_the_ten_percent_nodes_require() -> None:
    previous = Offer(22 * GWEI, 2 * GWEI)
    offer = replacement_offer(10 * GWEI, 2 * GWEI, previous, 100 * GWEI)
    assert offer is not None
    assert offer.max_fee * 10 >= previous.max_fee * 11 and offer.tip * 10 >= previous.tip * 11


def test_a_replacement_follows_a_base_fee_that_rose_beyond_the_bump() -> None:
    offer = replacement_offer(50 * GWEI, 2 * GWEI, Offer(22 * GWEI, 2 * GWEI), 1000 * GWEI)
    assert offer == Offer(100 * GWEI + bumped(2 * GWEI), bumped(2 * GWEI))


def test_no_replacement_when_it_would_cross_the_ceiling() -> None:
    previous = Offer(22 * GWEI, 2 * GWEI)
    assert replacement_offer(10 * GWEI, 2 * GWEI, previous, previous.max_fee) is None
    assert replacement_offer(10 * GWEI, 2 * GWEI, previous, bumped(previous.max_fee)) is not None


def test_fees_are_never_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        first_offer(-1, 0, GWEI)


def _epoch(status: EpochStatus) -> Epoch:
    return Epoch(number=7, status=status, updated_at=0)


@pytest.mark.parametrize("old", list(EpochStatus))
@pytest.mark.parametrize("new", list(EpochStatus))
def test_an_epoch_changes_status_only_along_an_allowed_transition(old: EpochStatus, new: EpochStatus) -> None:
    epoch = _epoch(old)
    if new in EPOCH_TRANSITIONS[old]:
        epoch.move_to(new)
        assert epoch.status == new and epoch.updated_at > 0
    else:
        with pytest.raises(OracleError, match=f"cannot go from {old} to {new}"):
            epoch.move_to(new)
        assert epoch.status == old


def test_failed_and_canceled_epochs_are_final_and_a_posted_one_is_only_canceled() -> None:
    assert EPOCH_TRANSITIONS[EpochStatus.FAILED] == EPOCH_TRANSITIONS[EpochStatus.CANCELED] == frozenset()
    assert EPOCH_TRANSITIONS[EpochStatus.POSTED] == {EpochStatus.CANCELED}
