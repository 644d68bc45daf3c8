"""The keeper's rules on constructed leaves: thresholds, the gas fraction, batches, order (pure)."""

from __future__ import annotations

from backend.keeper.plan import (
    BATCH_GAS,
    ETH,
    ETH_PAYEE_GAS,
    REPEAT_SAVING,
    TOKEN_PAYEE_GAS,
    AutoPay,
    Candidate,
    Rules,
    auto_pay,
    pack,
    plan,
)

GWEI = 10**9
TOKEN = "0x" + "7e" * 20
OTHER_TOKEN = "0x" + "0f" * 20
RULES = Rules(
    eth_threshold=10**15,
    gas_fraction=0.05,
    batch_gas=1_000_000,
    token_thresholds={TOKEN: 1_000},
    token_prices={TOKEN: 10**12},  # wei per base unit
)


def _account(i: int) -> str:
    return "0x" + f"{i:040x}"


def _eth(i: int, unpaid: int, claimed: int = 0) -> Candidate:
    return Candidate(_account(i), ETH, claimed + unpaid, claimed)


class TestThresholds:
    def test_a_leaf_below_its_threshold_waits_and_one_at_it_is_paid(self) -> None:
        result = plan([_eth(1, 10**15 - 1), _eth(2, 10**15)], RULES, gas_price=0)
        assert [c.account for b in result.batches for c in b.payees] == [_account(2)]
        assert [c.account for c in result.below_threshold] == [_account(1)]

    def test_what_was_claimed_counts_against_the_threshold(self) -> None:
        leaf = Candidate(_account(1), ETH, 3 * 10**15, 25 * 10**14)  # 0.0005 ETH unpaid
        assert plan([leaf], RULES, gas_price=0).below_threshold == [leaf]

    def test_a_leaf_paid_up_is_neither_paid_nor_waiting(self) -> None:
        result = plan([_eth(1, 0, claimed=10**18)], RULES, gas_price=0)
        assert (result.batches, result.below_threshold, result.too_costly) == ([], [], [])

    def test_a_token_without_a_threshold_is_never_paid_automatically(self) -> None:
        leaf = Candidate(_account(1), OTHER_TOKEN, 10**30, 0)
        result = plan([leaf], RULES, gas_price=0)
        assert result.batches == [] and result.below_threshold == [leaf]


class TestGasFraction:
    def test_a_payee_whose_gas_share_costs_too_much_of_it_waits(self) -> None:
        # A full batch of first ETH payees: each costs 40,000 gas plus its share of the fixed part.
        payees = [_eth(i, 10**16) for i in range(20)]
        share = ETH_PAYEE_GAS + BATCH_GAS / 20
        cheap = int(0.05 * 10**16 / share)  # the highest price at which 0.01 ETH is still worth it
        assert plan(payees, RULES, gas_price=cheap).payees == 20
        dear = plan(payees, RULES, gas_price=cheap + 1)
        assert dear.payees == 0 and len(dear.too_costly) == 20

    def test_dropping_payees_raises_the_others_share_until_no_one_is_dropped(self) -> None:
        rich = _eth(1, 10**18)
        # Just affordable in a batch of two, not alone (the fixed part is then all theirs).
        price = int(0.05 * 10**15 / (ETH_PAYEE_GAS + BATCH_GAS / 2))
        poor = [_eth(2, 10**15), _eth(3, 10**15 // 2)]  # account 3 is below the threshold
        result = plan([rich, poor[0], poor[1]], RULES, gas_price=price + 1)
        assert [c.account for b in result.batches for c in b.payees] == [_account(1)]
        assert result.too_costly == [poor[0]] and result.below_threshold == [poor[1]]

    def test_an_erc20_is_weighed_in_wei_at_its_price_and_without_a_price_by_its_threshold_only(self) -> None:
        token_leaf = Candidate(_account(1), TOKEN, 10**6, 0)  # 10**6 units at 10**12 wei: 10**18 wei
        share = TOKEN_PAYEE_GAS + BATCH_GAS
        price = int(0.05 * 10**18 / share)
        assert plan([token_leaf], RULES, gas_price=price).payees == 1
        assert plan([token_leaf], RULES, gas_price=price + 1).payees == 0
        unpriced = Rules(10**15, 0.05, 1_000_000, token_thresholds={TOKEN: 1_000})
        assert plan([token_leaf], unpriced, gas_price=10**30).payees == 1


class TestBatches:
    def test_batches_are_filled_smallest_gas_per_payee_first_up_to_the_gas_limit(self) -> None:
        first_eth = [_eth(i, 10**16) for i in range(30)]
        repeat_eth = [_eth(100 + i, 10**16, claimed=1) for i in range(30)]
        tokens = [Candidate(_account(200 + i), TOKEN, 10**6, 0) for i in range(30)]
        batches = pack([*tokens, *first_eth, *repeat_eth], 1_000_000)
        assert all(b.gas <= 1_000_000 for b in batches)
        order = [c.gas for b in batches for c in b.payees]
        assert order == sorted(order)
        assert order[0] == ETH_PAYEE_GAS - REPEAT_SAVING and order[-1] == TOKEN_PAYEE_GAS
        assert sum(len(b.payees) for b in batches) == 90
        # The first batch takes every repeat payee, then fills up with first ETH payees.
        assert batches[0].payees[:30] == tuple(sorted(repeat_eth, key=lambda c: c.account))
        assert batches[0].gas + ETH_PAYEE_GAS > 1_000_000

    def test_among_equal_gas_the_largest_amounts_go_first(self) -> None:
        small, large = _eth(1, 10**15), _eth(2, 10**17)
        assert [c.account for c in pack([small, large], 1_000_000)[0].payees] == [_account(2), _account(1)]

    def test_ten_thousand_payees_are_planned_deterministically(self) -> None:
        payees = [_eth(i, 10**15 + i) for i in range(10_000)]
        first = plan(payees, RULES, gas_price=GWEI)
        again = plan(list(reversed(payees)), RULES, gas_price=GWEI)
        assert first == again
        assert first.payees == 10_000 and len(first.batches) == -(-10_000 // 23)


class TestWhatSeedersAreTold:
    def test_each_standing_of_an_unpaid_part(self) -> None:
        def state(**kw: int | bool) -> AutoPay:
            args: dict[str, int | bool] = {"claimable": 0, "unclaimed": 0, "blocked": False, "gas_price": 0}
            return auto_pay(RULES, ETH, **{**args, **kw})  # type: ignore[arg-type]

        assert state() == AutoPay.NOTHING
        assert state(claimable=10**15, unclaimed=10**15) == AutoPay.DUE
        assert state(claimable=10**15, unclaimed=10**15, gas_price=2 * GWEI) == AutoPay.WAITING_FOR_FEES
        assert state(claimable=0, unclaimed=10**15) == AutoPay.NEXT_ROOT
        assert state(claimable=10, unclaimed=10**14) == AutoPay.BELOW_THRESHOLD
        assert state(claimable=10**15, unclaimed=10**15, blocked=True) == AutoPay.BLOCKED
        assert (
            auto_pay(RULES, OTHER_TOKEN, claimable=5, unclaimed=5, blocked=False, gas_price=0)
            == AutoPay.MANUAL
        )
