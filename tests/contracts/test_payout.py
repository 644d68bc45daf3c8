"""Batch payouts: many leaves of the active root paid in one transaction, proven by one multiproof.

Anyone may send a batch; each leaf's money goes only to its account; leaves already paid up are
skipped; a recipient that reverts or burns gas costs the batch little, keeps its amount claimable
and is skipped by later batches until its own claim succeeds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.managers import ChainManager
from eth_utils import keccak, to_checksum_address

from backend.merkle import Leaf, MerkleError, layout, multiproof_at, process_multiproof
from tests.conftest import LONG
from tests.contracts.helpers import ETH, ETHER, Seeders, activate, post
from tests.contracts.rpc import Node, Reverted

INVALID_PROOF = "0x" + keccak(text="InvalidProof()")[:4].hex()
INVALID_MULTIPROOF = "0x" + keccak(text="MerkleProofInvalidMultiproof()")[:4].hex()
GAS_LIMIT = 30_000_000  # anvil's block gas limit
PANIC = "0x" + keccak(text="Panic(uint256)")[:4].hex()
SPEND_LIKE_A_SAFE = 7_000  # a smart wallet behind a proxy that logs what it receives


class Mode:
    ACCEPT, REVERT, BURN_ALL, SPEND = range(4)


def fresh(rng: random.Random, count: int) -> list[str]:
    return [to_checksum_address(rng.randbytes(20)) for _ in range(count)]


@pytest.fixture
def wallet(project: Any, owner: AccountAPI) -> ContractInstance:
    """A contract seeder whose way of receiving ETH a test chooses."""
    return owner.deploy(project.PayoutRecipient)


@pytest.fixture
def seeders(
    buyer: AccountAPI, others: list[AccountAPI], token: ContractInstance, wallet: ContractInstance
) -> Seeders:
    return Seeders.of(
        [
            (buyer, ETH, 3 * ETHER // 10),
            (others[0], ETH, 2 * ETHER // 10),
            (others[1], ETH, ETHER // 10),
            (wallet, ETH, ETHER // 10),
            (buyer, token.address, 4 * ETHER // 10),
            (others[1], token.address, ETHER // 10),
            (others[2], ETH, 0),
        ]
    )


@pytest.fixture
def rpc(chain: ChainManager) -> Iterator[Node]:
    """Raw JSON-RPC: ape fetches a trace for every reverted call, seconds each."""
    node = Node(chain.provider.uri)
    yield node
    node.close()


def outcome(rpc: Node, market: ContractInstance, sender: AccountAPI, *args: Any) -> int | str:
    """What `payout(*args)` from `sender` would do now: the number of leaves paid, or the selector
    of its revert."""
    tx = {"from": sender.address, "to": market.address, "data": market.payout.encode_input(*args).to_0x_hex()}
    try:
        answer = rpc.request("eth_call", {**tx, "gas": hex(GAS_LIMIT)}, "latest")
    except Reverted as exc:
        return exc.data[:10]
    return int(answer, 16)


def paid(market: ContractInstance, receipt: Any) -> list[tuple[str, str, int, int]]:
    return [(e.account, e.token, e.amount, e.cumulativeAmount) for e in receipt.events.filter(market.Claimed)]


def failed(market: ContractInstance, receipt: Any) -> list[tuple[str, str, int]]:
    return [(e.account, e.token, e.amount) for e in receipt.events.filter(market.PayoutFailed)]


class TestPayingABatch:
    def test_of_one_leaf_pays_its_account(
        self, market: ContractInstance, live: Seeders, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        before = buyer.balance

        receipt = market.payout(*live.payout_args([(buyer, ETH)]), sender=keeper)

        assert buyer.balance == before + 3 * ETHER // 10
        assert paid(market, receipt) == [(buyer.address, ETH, 3 * ETHER // 10, 3 * ETHER // 10)]
        assert market.claimed(buyer, ETH) == 3 * ETHER // 10
        assert market.seederPool(ETH)[1] == 3 * ETHER // 10
        assert not market.payoutBlocked(buyer)

    def test_of_two_tokens_interleaved_pays_each_and_keeps_each_tokens_books(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        token: ContractInstance,
    ) -> None:
        keys = [(buyer, ETH), (buyer, token.address), (others[0], ETH), (others[1], token.address)]
        leaves, proof, flags = live.payout_args(keys)
        eth_before, token_before = buyer.balance, token.balanceOf(buyer)

        returned = market.payout.call(leaves, proof, flags, sender=keeper)
        receipt = market.payout(leaves, proof, flags, sender=keeper)

        assert returned == 4
        assert sorted(paid(market, receipt)) == sorted((a, t, n, n) for a, t, n in leaves)
        assert buyer.balance == eth_before + 3 * ETHER // 10
        assert token.balanceOf(buyer) == token_before + 4 * ETHER // 10
        assert market.seederPool(ETH)[1] == 5 * ETHER // 10
        assert market.seederPool(token)[1] == 5 * ETHER // 10

    def test_skips_leaves_already_paid_and_leaves_of_nothing(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        args = live.payout_args([(buyer, ETH), (others[0], ETH), (others[2], ETH)])
        first = market.payout(*args, sender=keeper)
        assert len(paid(market, first)) == 2

        again = market.payout(*args, sender=keeper)

        assert paid(market, again) == []
        assert market.seederPool(ETH)[1] == 5 * ETHER // 10

    def test_pays_only_the_growth_of_a_later_root(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        market.payout(*live.payout_args([(buyer, ETH)]), sender=keeper)
        later = Seeders.of([(buyer, ETH, 5 * ETHER // 10), (others[0], ETH, 2 * ETHER // 10)])
        post(market, oracle, later, tokens, totals=[7 * ETHER // 10 if t == ETH else ETHER for t in tokens])
        activate(chain)
        before = buyer.balance

        receipt = market.payout(*later.payout_args([(buyer, ETH), (others[0], ETH)]), sender=keeper)

        assert buyer.balance == before + 2 * ETHER // 10
        assert sorted(e[2] for e in paid(market, receipt)) == [2 * ETHER // 10, 2 * ETHER // 10]
        assert market.seederPool(ETH)[1] == 7 * ETHER // 10

    def test_uses_the_current_root_and_its_cap_while_a_newer_one_waits(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        newer = Seeders.of([(buyer, ETH, 6 * ETHER // 10), (others[0], ETH, 3 * ETHER // 10)])
        post(market, oracle, newer, tokens, totals=[ETHER for _ in tokens])

        with ape.reverts(market.InvalidProof):
            market.payout(*newer.payout_args([(buyer, ETH), (others[0], ETH)]), sender=keeper)
        market.payout(*live.payout_args([(buyer, ETH), (others[0], ETH)]), sender=keeper)

        assert market.claimed(others[0], ETH) == 2 * ETHER // 10

    def test_of_no_leaves_pays_nothing_even_with_the_root_as_its_proof(
        self, market: ContractInstance, live: Seeders, keeper: AccountAPI
    ) -> None:
        # OpenZeppelin's multiproof accepts the empty set when the proof is the root itself.
        receipt = market.payout([], [live.root], [], sender=keeper)
        assert paid(market, receipt) == []
        assert market.payout.call([], [live.root], [], sender=keeper) == 0


class TestTheRootsRules:
    def test_the_per_token_cap_of_the_root_holds_over_a_batch(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        token: ContractInstance,
        tokens: list[str],
    ) -> None:
        greedy = Seeders.of(
            [(buyer, ETH, ETHER // 2), (others[0], ETH, ETHER // 2), (buyer, token.address, ETHER // 4)]
        )
        # The oracle declared less than its ETH leaves add up to.
        post(market, oracle, greedy, tokens, totals=[ETHER // 2 if t == ETH else ETHER // 4 for t in tokens])
        activate(chain)
        args = greedy.payout_args([(buyer, ETH), (others[0], ETH), (buyer, token.address)])

        with ape.reverts(market.ClaimExceedsRootTotal):
            market.payout(*args, sender=keeper)

        market.payout(*greedy.payout_args([(buyer, ETH), (buyer, token.address)]), sender=keeper)
        assert market.seederPool(ETH)[1] == ETHER // 2
        with ape.reverts(market.ClaimExceedsRootTotal):
            market.payout(*greedy.payout_args([(others[0], ETH)]), sender=keeper)

    def test_a_leaf_of_a_pending_root_is_not_paid_until_it_is_active(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        seeders: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        post(market, oracle, seeders, tokens)
        with ape.reverts(market.NoActiveRoot):
            market.payout(*seeders.payout_args([(buyer, ETH)]), sender=keeper)
        activate(chain)
        market.payout(*seeders.payout_args([(buyer, ETH)]), sender=keeper)
        assert market.claimed(buyer, ETH) == 3 * ETHER // 10

    def test_a_leaf_of_a_canceled_root_is_not_paid(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        canceled = Seeders.of([(buyer, ETH, ETHER)])
        post(market, oracle, canceled, tokens, totals=[ETHER for _ in tokens])
        market.cancelRoot(sender=guardian)
        activate(chain)

        with ape.reverts(market.InvalidProof):
            market.payout(*canceled.payout_args([(buyer, ETH)]), sender=keeper)
        assert market.claimed(buyer, ETH) == 0

    def test_is_refused_while_paused(
        self,
        market: ContractInstance,
        guardian: AccountAPI,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.payout(*live.payout_args([(buyer, ETH)]), sender=keeper)


class TestTakingWhatIsNotYours:
    def test_a_keeper_pays_others_never_itself(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        before = keeper.balance
        receipt = market.payout(*live.payout_args([(buyer, ETH), (others[0], ETH)]), sender=keeper)
        assert keeper.balance == before - receipt.total_fees_paid

    def test_a_leaf_rewritten_for_another_account_or_amount_is_refused(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        leaves, proof, flags = live.payout_args([(buyer, ETH), (others[0], ETH)])
        mine = [(keeper.address, t, n) if a == buyer.address else (a, t, n) for a, t, n in leaves]
        more = [(a, t, n + 1) if a == buyer.address else (a, t, n) for a, t, n in leaves]
        for forged in (mine, more):
            with ape.reverts(market.InvalidProof):
                market.payout(forged, proof, flags, sender=keeper)
        assert market.seederPool(ETH)[1] == 0

    def test_a_multiproof_of_other_leaves_is_refused(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        leaves, _, _ = live.payout_args([(buyer, ETH), (others[0], ETH)])
        _, proof, flags = live.payout_args([(buyer, ETH), (others[1], ETH)])
        with ape.reverts(market.InvalidProof):
            market.payout(leaves, proof, flags, sender=keeper)

    def test_a_leaf_twice_in_a_batch_is_refused(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
        token: ContractInstance,
        rpc: Node,
    ) -> None:
        (leaf,), proof, flags = live.payout_args([(buyer, ETH)])
        _, pair_proof, pair_flags = live.payout_args([(buyer, ETH), (buyer, token.address)])
        attempts = [
            (proof, flags),  # the lengths do not add up
            (proof[1:], flags),  # they do, but the copies cannot both sit in the tree
            (proof, [True, *flags]),
            (pair_proof, pair_flags),  # the proof of the leaf and another
        ]
        refused = [outcome(rpc, market, keeper, [leaf, leaf], p, f) for p, f in attempts]
        assert refused[0] == INVALID_MULTIPROOF
        assert set(refused) <= {INVALID_MULTIPROOF, INVALID_PROOF, PANIC}

    def test_a_tree_that_holds_a_leaf_twice_pays_it_once(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        buyer: AccountAPI,
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        # An oracle's faulty tree with the same leaf at two positions proves both copies.
        leaf = Leaf.of(buyer.address, ETH, ETHER // 10)
        filler = Leaf.of(keeper.address, ETH, 0)
        tree, where = layout([leaf.hash(), leaf.hash(), filler.hash()])
        order, proof, flags = multiproof_at(tree, where[:2])
        assert len(order) == 2
        epoch = market.lastEpoch() + 1
        totals = [ETHER if t == ETH else 0 for t in tokens]
        market.postRoot(tree[0], epoch, tokens, totals, "ipfs://epoch", sender=oracle)
        activate(chain)
        before = buyer.balance
        as_args = (leaf.account, leaf.token, leaf.cumulative_amount)

        receipt = market.payout([as_args, as_args], proof, flags, sender=keeper)

        assert len(paid(market, receipt)) == 1
        assert buyer.balance == before + ETHER // 10
        assert market.seederPool(ETH)[1] == ETHER // 10

    def test_tampered_flags_and_proofs_never_verify(
        self,
        market: ContractInstance,
        pools: dict[str, int],
        oracle: AccountAPI,
        chain: ChainManager,
        keeper: AccountAPI,
        tokens: list[str],
        rpc: Node,
    ) -> None:
        rng = random.Random(13)
        tree = Seeders.of([(a, ETH, 10**12) for a in fresh(rng, 40)])
        post(market, oracle, tree, tokens)
        activate(chain)
        keys = [(leaf.account, ETH) for leaf in rng.sample(tree.tree.leaves, 6)]
        leaves, proof, flags = tree.payout_args(keys)
        assert outcome(rpc, market, keeper, leaves, proof, flags) == 6
        # OpenZeppelin's own checks: the lengths add up, and every proof node is used.
        assert outcome(rpc, market, keeper, leaves, [*proof, proof[0]], flags) == INVALID_MULTIPROOF
        last_false = max(i for i, f in enumerate(flags) if not f)
        flipped = [True if i == last_false else f for i, f in enumerate(flags)]
        assert outcome(rpc, market, keeper, leaves, proof, flipped) in (INVALID_MULTIPROOF, PANIC)
        # Random tampering: the contract accepts exactly what OpenZeppelin's algorithm accepts
        # (swapping two sibling leaves that are hashed together still proves the same set).
        for _ in range(40):
            f, p, ls = list(flags), list(proof), list(leaves)
            what = rng.randrange(4)
            if what == 0:
                i = rng.randrange(len(f))
                f[i] = not f[i]
            elif what == 1:
                i, j = rng.sample(range(len(ls)), 2)
                ls[i], ls[j] = ls[j], ls[i]
            elif what == 2:
                i, j = rng.sample(range(len(p)), 2)
                p[i], p[j] = p[j], p[i]
            else:
                ls, p = ls[:-1], [*p, rng.randbytes(32)]
            try:
                valid = process_multiproof([Leaf.of(*leaf).hash() for leaf in ls], p, f) == tree.root
            except MerkleError:
                valid = False
            got = outcome(rpc, market, keeper, ls, p, f)
            assert got == len(ls) if valid else got in (INVALID_PROOF, INVALID_MULTIPROOF, PANIC)


class TestRecipientsThatCannotReceive:
    @pytest.mark.parametrize("mode", [Mode.REVERT, Mode.BURN_ALL])
    def test_do_not_block_the_batch_and_keep_their_amount_claimable(
        self,
        market: ContractInstance,
        live: Seeders,
        wallet: ContractInstance,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        owner: AccountAPI,
        mode: int,
    ) -> None:
        wallet.setMode(mode, 0, sender=owner)
        keys = [(buyer, ETH), (wallet, ETH), (others[0], ETH)]
        before = buyer.balance

        receipt = market.payout(*live.payout_args(keys), sender=keeper)

        assert sorted(e[0] for e in paid(market, receipt)) == sorted([buyer.address, others[0].address])
        assert failed(market, receipt) == [(wallet.address, ETH, ETHER // 10)]
        assert buyer.balance == before + 3 * ETHER // 10
        assert wallet.balance == 0
        assert market.claimed(wallet, ETH) == 0
        assert market.seederPool(ETH)[1] == 5 * ETHER // 10
        assert market.payoutBlocked(wallet)
        # Later batches skip it quietly: it cannot waste their gas again.
        again = market.payout(*live.payout_args(keys), sender=keeper)
        assert failed(market, again) == [] and paid(market, again) == []

    def test_a_gas_burner_costs_the_batch_at_most_its_bounded_share(
        self,
        market: ContractInstance,
        live: Seeders,
        wallet: ContractInstance,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        owner: AccountAPI,
        chain: ChainManager,
    ) -> None:
        keys = [(buyer, ETH), (wallet, ETH), (others[0], ETH)]
        snapshot = chain.snapshot()
        wallet.setMode(Mode.ACCEPT, 0, sender=owner)
        honest = market.payout(*live.payout_args(keys), sender=keeper).gas_used
        chain.restore(snapshot)
        wallet.setMode(Mode.BURN_ALL, 0, sender=owner)

        burnt = market.payout(*live.payout_args(keys), sender=keeper, gas=5_000_000).gas_used

        assert burnt - honest <= market.PAYOUT_GAS() + 2_300

    def test_its_own_claim_pays_it_and_unblocks_its_payouts(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        live: Seeders,
        wallet: ContractInstance,
        keeper: AccountAPI,
        owner: AccountAPI,
        tokens: list[str],
    ) -> None:
        wallet.setMode(Mode.REVERT, 0, sender=owner)
        market.payout(*live.payout_args([(wallet, ETH)]), sender=keeper)
        assert market.payoutBlocked(wallet)
        wallet.setMode(Mode.ACCEPT, 0, sender=owner)
        with ape.reverts(market.NothingToClaim):  # claimed is not advanced by the blocking bit
            market.claim(wallet, ETH, 0, [], sender=keeper)

        wallet.execute(market, market.claim.encode_input(*live.claim_args(wallet, ETH)), sender=owner)

        assert wallet.balance == ETHER // 10
        assert not market.payoutBlocked(wallet)
        later = Seeders.of([(wallet, ETH, 2 * ETHER // 10)])
        post(market, oracle, later, tokens, totals=[ETHER for _ in tokens])
        activate(chain)
        receipt = market.payout(*later.payout_args([(wallet, ETH)]), sender=keeper)
        assert paid(market, receipt) == [(wallet.address, ETH, ETHER // 10, 2 * ETHER // 10)]

    def test_a_smart_wallet_gets_enough_gas_and_one_that_needs_more_is_blocked(
        self,
        market: ContractInstance,
        live: Seeders,
        wallet: ContractInstance,
        keeper: AccountAPI,
        owner: AccountAPI,
        chain: ChainManager,
    ) -> None:
        snapshot = chain.snapshot()
        wallet.setMode(Mode.SPEND, SPEND_LIKE_A_SAFE, sender=owner)
        receipt = market.payout(*live.payout_args([(wallet, ETH)]), sender=keeper)
        assert wallet.balance == ETHER // 10 and not failed(market, receipt)
        chain.restore(snapshot)
        wallet.setMode(Mode.SPEND, market.PAYOUT_GAS() + 2_300, sender=owner)
        receipt = market.payout(*live.payout_args([(wallet, ETH)]), sender=keeper)
        assert failed(market, receipt) and market.payoutBlocked(wallet)

    def test_too_little_gas_reverts_the_batch_instead_of_starving_a_recipient(
        self,
        market: ContractInstance,
        live: Seeders,
        wallet: ContractInstance,
        buyer: AccountAPI,
        keeper: AccountAPI,
        owner: AccountAPI,
        chain: ChainManager,
    ) -> None:
        wallet.setMode(Mode.SPEND, SPEND_LIKE_A_SAFE, sender=owner)
        args = live.payout_args([(buyer, ETH), (wallet, ETH)])
        snapshot = chain.snapshot()
        used = market.payout(*args, sender=keeper).gas_used
        chain.restore(snapshot)

        with ape.reverts(market.PayoutGasTooLow):
            market.payout(*args, sender=keeper, gas=used + 5_000)
        assert not market.payoutBlocked(wallet)

    @pytest.fixture
    def evil(
        self,
        project: Any,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        owner: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
    ) -> tuple[ContractInstance, Seeders]:
        """An allow-listed token that misbehaves on demand, its pool funded, a root of two of its
        leaves active."""
        evil = owner.deploy(project.MaliciousToken)
        market.setTokenAllowed(evil, True, sender=owner)
        product = market.listProduct(b"\x09" * 20 + bytes(12), 1, evil, ETHER, 10_000, "", sender=seller)
        product_id = product.events.filter(market.ProductListed)[0].productId
        evil.mint(buyer, ETHER, sender=owner)
        evil.approve(market, ETHER, sender=buyer)
        market.purchase(product_id, evil, ETHER, 1, sender=buyer)
        seeders = Seeders.of([(others[0], evil.address, ETHER // 10), (others[1], evil.address, ETHER // 10)])
        post(market, oracle, seeders, [evil.address])
        activate(chain)
        return evil, seeders

    def test_a_token_transfer_that_fails_is_skipped_and_stays_claimable(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        evil: tuple[ContractInstance, Seeders],
    ) -> None:
        token, seeders = evil
        token.setMode(3, ETH, b"", sender=owner)  # every transfer out returns false

        receipt = market.payout(*seeders.payout_args([(others[0], token.address)]), sender=keeper)

        assert failed(market, receipt) == [(others[0].address, token.address, ETHER // 10)]
        assert market.claimed(others[0], token) == 0 and market.seederPool(token)[1] == 0
        # A token failure (a blocklist, a paused token) does not block: the next batch tries again.
        token.setMode(0, ETH, b"", sender=owner)
        both = [(others[0], token.address), (others[1], token.address)]
        receipt = market.payout(*seeders.payout_args(both), sender=keeper)
        assert len(paid(market, receipt)) == 2
        assert token.balanceOf(others[0]) == ETHER // 10

    def test_a_token_that_reenters_the_payout_is_stopped_and_pays_once(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        evil: tuple[ContractInstance, Seeders],
    ) -> None:
        token, seeders = evil
        args = seeders.payout_args([(others[0], token.address)])
        token.setMode(1, market, market.payout.encode_input(*args), sender=owner)  # Reenter

        receipt = market.payout(*args, sender=keeper)

        assert len(paid(market, receipt)) == 1
        assert not token.lastCallSucceeded()
        assert bytes(token.lastCallResult())[:4] == keccak(text="ReentrancyGuardReentrantCall()")[:4]
        assert token.balanceOf(others[0]) == ETHER // 10
        assert market.seederPool(token)[1] == ETHER // 10

    def test_a_blocked_account_still_gets_its_token_payouts(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        wallet: ContractInstance,
        keeper: AccountAPI,
        owner: AccountAPI,
        token: ContractInstance,
        tokens: list[str],
    ) -> None:
        seeders = Seeders.of([(wallet, ETH, ETHER // 10), (wallet, token.address, ETHER // 10)])
        post(market, oracle, seeders, tokens)
        activate(chain)
        wallet.setMode(Mode.REVERT, 0, sender=owner)
        market.payout(*seeders.payout_args([(wallet, ETH)]), sender=keeper)
        assert market.payoutBlocked(wallet)

        receipt = market.payout(*seeders.payout_args([(wallet, ETH), (wallet, token.address)]), sender=keeper)

        assert paid(market, receipt) == [(wallet.address, token.address, ETHER // 10, ETHER // 10)]
        assert failed(market, receipt) == []
        assert token.balanceOf(wallet) == ETHER // 10


class TestRacingAClaim:
    def test_a_claim_first_makes_the_batch_skip_its_leaf(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        market.claim(*live.claim_args(buyer, ETH), sender=buyer)
        before = buyer.balance

        receipt = market.payout(*live.payout_args([(buyer, ETH), (others[0], ETH)]), sender=keeper)

        assert [e[0] for e in paid(market, receipt)] == [others[0].address]
        assert buyer.balance == before
        assert market.seederPool(ETH)[1] == 5 * ETHER // 10

    def test_a_payout_first_makes_the_claim_fail_with_nothing_to_claim(
        self, market: ContractInstance, live: Seeders, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        market.payout(*live.payout_args([(buyer, ETH)]), sender=keeper)
        with ape.reverts(market.NothingToClaim):
            market.claim(*live.claim_args(buyer, ETH), sender=buyer)
        assert market.claimMany.call([live.claim_args(buyer, ETH)], sender=keeper) == 0


class TestLargeBatches:
    """Batches to new accounts (each send creates one: ~62,000 gas a leaf), past anvil's default
    block gas limit for a thousand, sent raw: ape gives up waiting after 20 s of anvil's tracing."""

    @pytest.fixture
    def roomy(self, chain: ChainManager) -> Iterator[None]:
        limit = chain.blocks.head.gas_limit
        chain.provider.set_block_gas_limit(200_000_000)
        chain.mine()  # the new limit holds from the next block on
        yield
        chain.provider.set_block_gas_limit(limit)
        chain.mine()

    def pay(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        keeper: AccountAPI,
        rpc: Node,
        tokens: list[str],
        size: int,
        tree_size: int,
    ) -> None:
        rng = random.Random(size)
        amount = 10**14
        accounts = fresh(rng, tree_size)
        seeders = Seeders.of([(a, ETH, amount) for a in accounts])
        post(market, oracle, seeders, tokens, totals=[size * amount if t == ETH else 0 for t in tokens])
        activate(chain)
        keys = [(a, ETH) for a in rng.sample(accounts, size)]
        before = market.balance
        args = seeders.payout_args(keys)
        data = market.payout.encode_input(*args).to_0x_hex()
        tx = {"from": keeper.address, "to": market.address, "data": data}

        sent = rpc.request(
            "eth_sendTransaction",
            {**tx, "gas": hex(chain.blocks.head.gas_limit)},
        )
        deadline = time.monotonic() + 300
        while (receipt := rpc.request("eth_getTransactionReceipt", sent)) is None:
            assert time.monotonic() < deadline, "not mined"
            time.sleep(0.1)
        assert receipt["status"] == "0x1"

        assert market.balance == before - size * amount
        assert market.seederPool(ETH)[1] == size * amount
        for account, _ in rng.sample(keys, 5):
            assert chain.provider.get_balance(account) == amount
            assert market.claimed(account, ETH) == amount

    def test_of_a_hundred_leaves(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        keeper: AccountAPI,
        rpc: Node,
        tokens: list[str],
    ) -> None:
        self.pay(market, oracle, chain, keeper, rpc, tokens, 100, 1_000)

    @pytest.mark.slow
    @pytest.mark.skipif(not LONG, reason="about a minute on anvil with step tracing; SEEDMARKET_LONG=1")
    def test_of_a_thousand_leaves(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        keeper: AccountAPI,
        rpc: Node,
        tokens: list[str],
        roomy: None,
    ) -> None:
        self.pay(market, oracle, chain, keeper, rpc, tokens, 1_000, 4_000)
