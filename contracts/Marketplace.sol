// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {LowLevelCall} from "@openzeppelin/contracts/utils/LowLevelCall.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {EarningsTree} from "./EarningsTree.sol";
import {IMarketplace} from "./IMarketplace.sol";

/// @title seedmarket Marketplace
/// @notice A store for digital goods delivered over BitTorrent. Each purchase is split into the
/// seller's amount, the operator's fee and a seeder pool; seeders are paid from the pool by
/// cumulative Merkle roots that the oracle posts and anyone can claim against.
/// @dev Invariant, per token: balance >= sum of seller and operator balances + funded seeder pool
/// - claimed. Only the oracle's roots move seeder-pool money, never beyond what was funded.
/// Nobody moves seeder money faster than the guardian's veto window: a root is claimable only
/// after `rootDelay` seconds of unpaused time, the owner is meant to be a `SeedmarketTimelock`
/// (OpenZeppelin `TimelockController`) whose delay is at least the highest root delay and whose
/// canceller is the guardian, and `rootDelay` stays within bounds fixed at deployment.
/// Pausing stops listings, product updates, purchases, roots, claims and the clock of a pending
/// root; it never stops withdrawals of sellers' and the treasury's balances, cancels, closing a
/// product, or governance.
/// The Merkle leaf is the OpenZeppelin standard-tree leaf of `(address account, address token,
/// uint256 cumulativeAmount)`; the claim flow follows Uniswap's MerkleDistributor, made cumulative.
/// The EIP-712 domain ("seedmarket", "1") names this contract as the verifying contract of the
/// off-chain download receipts.
/// Storage is laid out for the two hot paths: a claim reads one status slot, one root, its own
/// `claimed` slot and one ledger slot of its token; a purchase never re-creates a zeroed balance.
/// The pause flag lives in the status slot (instead of OpenZeppelin `Pausable`'s own slot) for
/// that reason; `paused()`, its events and errors are the same as OpenZeppelin's.
contract Marketplace is IMarketplace, Ownable2Step, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice Basis points in one whole.
    uint16 public constant BPS = 10_000;

    /// @notice The highest ceiling a deployment may give `rootDelay`: keeps `now + rootDelay` far
    /// within uint64 and a misconfigured deployment from locking roots for years.
    uint64 public constant ROOT_DELAY_LIMIT = 365 days;

    /// @notice The lowest `rootDelay` the owner can ever set: the guardian's veto window.
    uint64 public immutable minRootDelay;
    /// @notice The highest `rootDelay` the owner can ever set.
    uint64 public immutable maxRootDelay;

    /// @dev Set in every balance slot once it is used, so that a withdrawal leaves the slot nonzero
    /// and the next purchase credits it for 2,900 gas instead of 20,000. Balances are sums of
    /// uint128 amounts and never come near this bit.
    uint256 private constant _USED = 1 << 255;

    /// @notice The gas an ETH payout gives its recipient on top of the 2,300 stipend. Enough for
    /// a smart wallet behind a proxy that logs what it receives (a Safe takes about 6,500: a cold
    /// implementation slot, a cold delegatecall and an event), too little for anything that could
    /// hurt; a recipient that reverts or runs out wastes at most this much of the batch's gas once,
    /// and is then skipped until its own claim succeeds.
    uint256 public constant PAYOUT_GAS = 10_000;

    /// @dev The gas left before an ETH payout's call that guarantees the recipient `PAYOUT_GAS`:
    /// what the call may charge first (a cold account 2,600, the value 9,000, a new account 25,000),
    /// then 64/63 of `PAYOUT_GAS` (a call keeps 1/64 back), and a margin. A caller who sends too
    /// little gas gets a revert, never a recipient that failed for lack of gas.
    uint256 private constant _ETH_PAYOUT_GAS_NEEDED = 2_600 + 9_000 + 25_000 + (PAYOUT_GAS * 64) / 63 + 1_000;

    /// @dev The gas left before an ERC-20 payout's transfer, for the same reason: an allow-listed
    /// token's transfer takes far less.
    uint256 private constant _TOKEN_PAYOUT_GAS_NEEDED = 100_000;

    /// @dev Set in the ETH `claimed` slot of an account whose ETH payout failed: its payouts are
    /// skipped (the slot then reads as more than any leaf) until its own claim rewrites the slot.
    /// Cumulative amounts are capped by uint128 root totals and never come near this bit.
    uint256 private constant _PAYOUT_BLOCKED = 1 << 255;

    /// @dev What every claim and purchase reads first, in one slot.
    struct Status {
        uint64 pausedAt; // 0 when not paused; else when the pause began (root time stands still)
        uint64 pendingActiveAt; // 0 when there is no pending root (none posted yet, or canceled)
        uint64 currentEpoch;
        uint64 pendingEpoch; // also the last epoch ever posted, canceled ones included
    }

    /// @dev Per token, the slot a claim reads and writes: claimed so far, and the pending root's total.
    struct ClaimLedger {
        uint128 claimed;
        uint128 pendingTotal;
    }

    /// @dev Per token, the slot a purchase writes: the funded seeder pool, and the current root's total.
    struct PoolLedger {
        uint128 funded;
        uint128 currentTotal;
    }

    // Roles and parameters, packed by the function that reads them together.
    address public oracle;
    uint64 public rootDelay;
    address public treasury;
    uint16 public operatorFeeBps;
    address public guardian;

    uint256 public productCount;
    uint256 public purchaseCount;
    /// @notice Number of tokens whose seeder pool was ever funded; every root lists all of them.
    uint256 public fundedTokenCount;

    Status private _status;
    bytes32 private _currentRoot;
    bytes32 private _pendingRoot;

    mapping(uint256 productId => Product) private _products;
    /// @notice The unique, nonzero purchase id of `buyer` for `productId`, or 0.
    mapping(uint256 productId => mapping(address buyer => uint256 purchaseId)) public purchaseOf;
    /// @notice Tokens other than ETH that products may be priced in.
    mapping(address token => bool) public tokenAllowed;
    /// @dev Cumulative amount `account` has claimed in `token`, with `_PAYOUT_BLOCKED` in ETH.
    mapping(address account => mapping(address token => uint256)) private _claimed;
    /// @dev Withdrawable balances of sellers and the treasury, with the `_USED` bit.
    mapping(address account => mapping(address token => uint256)) private _balances;
    mapping(address token => ClaimLedger) private _claimLedgers;
    mapping(address token => PoolLedger) private _poolLedgers;

    /// @param owner_ The store operator: parameters, allow-list, roles, unpause.
    /// @param oracle_ The account that posts roots.
    /// @param guardian_ The account that may cancel a pending root and pause.
    /// @param treasury_ Where operator fees accrue.
    /// @param operatorFeeBps_ The operator's share of each purchase's pool, in basis points.
    /// @param rootDelay_ Seconds of unpaused time between a root's posting and its first claim.
    /// @param minRootDelay_ The floor of `rootDelay`, for good.
    /// @param maxRootDelay_ The ceiling of `rootDelay`, for good; at most `ROOT_DELAY_LIMIT`.
    constructor(
        address owner_,
        address oracle_,
        address guardian_,
        address treasury_,
        uint16 operatorFeeBps_,
        uint64 rootDelay_,
        uint64 minRootDelay_,
        uint64 maxRootDelay_
    ) Ownable(owner_) EIP712("seedmarket", "1") {
        if (minRootDelay_ > maxRootDelay_ || maxRootDelay_ > ROOT_DELAY_LIMIT) {
            revert InvalidRootDelayBounds(minRootDelay_, maxRootDelay_);
        }
        minRootDelay = minRootDelay_;
        maxRootDelay = maxRootDelay_;
        _setOracle(oracle_);
        _setGuardian(guardian_);
        _setTreasury(treasury_);
        _setOperatorFee(operatorFeeBps_);
        _setRootDelay(rootDelay_);
    }

    // ----- sellers -----

    /// @notice List a product; the caller is its seller.
    /// @param infohash The torrent's v1 SHA-1 infohash, left-aligned in 32 bytes (the low 12 bytes
    /// zero, so one content has one spelling). Not unique: anyone may list any infohash, and only
    /// the store decides which listing it serves (the first whose seller uploads the info
    /// dictionary), so a squatter who copies an infohash from the mempool blocks nobody.
    /// @param size The torrent's total length in bytes.
    /// @param token The payment token, `address(0)` for ETH, else an allow-listed ERC-20.
    /// @param price The price in `token`'s smallest unit, nonzero.
    /// @param discountBps The share of the price that goes to the pool (operator fee + seeders).
    /// @param metadataURI Where the store keeps the product's description.
    /// @return productId The new product's id, counting from 1.
    function listProduct(
        bytes32 infohash,
        uint64 size,
        address token,
        uint256 price,
        uint16 discountBps,
        string calldata metadataURI
    ) external returns (uint256 productId) {
        _requireNotPaused();
        if (infohash == 0 || uint96(uint256(infohash)) != 0 || size == 0) revert InvalidListing();
        _checkTerms(token, price, discountBps);

        productId = ++productCount;
        _products[productId] = Product({
            seller: msg.sender,
            discountBps: discountBps,
            active: true,
            size: size,
            token: token,
            termsVersion: 1,
            price: price,
            infohash: infohash
        });
        emit ProductListed(productId, msg.sender, infohash, size, token, price, discountBps, metadataURI);
    }

    /// @notice Change a product's terms for future purchases. Content (infohash, size) never changes.
    /// @dev Bumps the terms version, so a purchase signed against the old terms reverts.
    function updateProduct(
        uint256 productId,
        address token,
        uint256 price,
        uint16 discountBps,
        string calldata metadataURI
    ) external {
        _requireNotPaused();
        Product storage product = _sellerProduct(productId);
        _checkTerms(token, price, discountBps);
        uint32 version = product.termsVersion + 1;
        product.token = token;
        product.termsVersion = version;
        product.price = price;
        product.discountBps = discountBps;
        emit ProductUpdated(productId, token, price, discountBps, metadataURI, version);
    }

    /// @notice Open or close a product for new purchases; existing buyers keep their access.
    function setProductActive(uint256 productId, bool active) external {
        _sellerProduct(productId).active = active;
        emit ProductActiveSet(productId, active);
    }

    /// @notice A product's listing.
    function product(uint256 productId) external view returns (Product memory) {
        Product memory p = _products[productId];
        if (p.seller == address(0)) revert UnknownProduct(productId);
        return p;
    }

    // ----- buyers -----

    /// @notice Buy a product for yourself, paying its full price in ETH or its ERC-20.
    /// @param token The payment token the buyer agreed to.
    /// @param price The price the buyer agreed to.
    /// @param termsVersion The product's terms version the buyer saw (see `product`).
    /// @dev Reverts with `TermsChanged` if the seller changed the terms meanwhile: a buyer with a
    /// standing ERC-20 approval never pays more than, or in another token than, what they saw.
    /// @return purchaseId The purchase's unique, nonzero id.
    function purchase(uint256 productId, address token, uint256 price, uint32 termsVersion)
        external
        payable
        returns (uint256 purchaseId)
    {
        return _purchase(productId, msg.sender, token, price, termsVersion);
    }

    /// @notice Buy a product for `buyer` on the terms the caller agreed to; the caller pays.
    function purchaseFor(uint256 productId, address buyer, address token, uint256 price, uint32 termsVersion)
        external
        payable
        returns (uint256 purchaseId)
    {
        if (buyer == address(0)) revert ZeroAddress();
        return _purchase(productId, buyer, token, price, termsVersion);
    }

    /// @dev `token` and `price` are what the buyer agreed to and, once checked, the product's own.
    function _purchase(uint256 productId, address buyer, address token, uint256 price, uint32 termsVersion)
        private
        nonReentrant
        returns (uint256 purchaseId)
    {
        // Checks: an active product, bought once per buyer.
        _requireNotPaused();
        Product storage product_ = _products[productId];
        address seller = product_.seller;
        if (seller == address(0)) revert UnknownProduct(productId);
        if (!product_.active) revert ProductInactive(productId);
        uint256 previous = purchaseOf[productId][buyer];
        if (previous != 0) revert AlreadyPurchased(productId, buyer, previous);
        if (product_.token != token || product_.price != price || product_.termsVersion != termsVersion) {
            revert TermsChanged(productId, product_.token, product_.price, product_.termsVersion);
        }
        if (token == address(0)) {
            if (msg.value != price) revert WrongPayment(price, msg.value);
        } else {
            if (msg.value != 0) revert WrongPayment(0, msg.value);
            if (!tokenAllowed[token]) revert TokenNotAllowed(token);
        }

        // Split: seller + fee + seeders == price, to the unit.
        uint256 pool = price * product_.discountBps / BPS;
        uint256 fee = pool * operatorFeeBps / BPS;
        uint256 seeders = pool - fee;
        uint256 sellerAmount = price - pool;

        // State.
        purchaseId = ++purchaseCount;
        purchaseOf[productId][buyer] = purchaseId;
        _credit(seller, token, sellerAmount);
        _credit(treasury, token, fee);
        if (seeders != 0) {
            PoolLedger storage ledger = _poolLedgers[token];
            uint256 funded = ledger.funded;
            if (funded == 0) ++fundedTokenCount;
            ledger.funded = SafeCast.toUint128(funded + seeders);
        }
        emit Purchased(purchaseId, productId, buyer, token, price, sellerAmount, fee, seeders);

        // Interaction: pull the ERC-20 and account only what arrived.
        if (token != address(0)) {
            uint256 before = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransferFrom(msg.sender, address(this), price);
            uint256 received = IERC20(token).balanceOf(address(this)) - before;
            if (received != price) revert TokenTransferShortfall(price, received);
        }
    }

    // ----- withdrawals -----

    /// @notice Pay out the caller's seller or treasury balance in `token`.
    /// @dev Works while paused: this money is already owed.
    /// WARNING: sends ETH to the caller, who may be a contract; the balance is zeroed first and
    /// the function is non-reentrant.
    function withdraw(address token) external nonReentrant returns (uint256 amount) {
        amount = _balances[msg.sender][token] & ~_USED;
        if (amount == 0) revert NothingToWithdraw();
        _balances[msg.sender][token] = _USED;
        emit Withdrawn(msg.sender, token, amount);
        _send(token, msg.sender, amount);
    }

    /// @notice What `account` (a seller or the treasury) can withdraw in `token` now.
    function balanceOf(address account, address token) external view returns (uint256) {
        return _balances[account][token] & ~_USED;
    }

    // ----- roots -----

    /// @notice Post the Merkle root of everyone's cumulative earnings for `epoch`. Oracle only.
    /// @param epoch Exactly the last epoch posted (canceled ones included) + 1: no epoch can jump
    /// ahead and lock out every later root.
    /// @param tokens Every token whose seeder pool was ever funded, in ascending address order. The
    /// oracle reads this set from the chain when it signs; a front-run that funds a new token first
    /// makes the root revert with `TokensIncomplete` and the oracle re-signs it. Each token can do
    /// that once (only a first funding changes the set), so the allow-list bounds the griefing.
    /// @param cumulativeTotals Each token's sum of all leaves: never lower than the last live root's,
    /// never more than the token's funded seeder pool.
    /// @param dataURI Where the tree dump and the receipts behind it are published.
    /// @dev The root becomes claimable `rootDelay` seconds later; a previous pending root must have
    /// become active first (or been canceled). Gas does not depend on the number of leaves.
    function postRoot(
        bytes32 root,
        uint64 epoch,
        address[] calldata tokens,
        uint256[] calldata cumulativeTotals,
        string calldata dataURI
    ) external {
        // Checks: the oracle, a live contract, a new epoch, every funded token.
        if (msg.sender != oracle) revert NotOracle();
        Status memory status = _status;
        if (status.pausedAt != 0) revert EnforcedPause();
        if (root == 0) revert ZeroRoot();
        uint64 next = status.pendingEpoch + 1;
        if (epoch != next) revert EpochNotNext(epoch, next);
        uint256 count = tokens.length;
        if (count != cumulativeTotals.length) revert LengthMismatch();
        if (count != fundedTokenCount) revert TokensIncomplete(count, fundedTokenCount);

        // A pending root whose delay has passed becomes the current one.
        bool promote = status.pendingActiveAt != 0;
        if (promote) {
            if (block.timestamp < status.pendingActiveAt) {
                revert RootPending(status.pendingEpoch, status.pendingActiveAt);
            }
            _currentRoot = _pendingRoot;
            status.currentEpoch = status.pendingEpoch;
        }

        for (uint256 i; i < count; ++i) {
            address token = tokens[i];
            if (i != 0 && token <= tokens[i - 1]) revert TokensNotSorted();
            PoolLedger storage pool = _poolLedgers[token];
            ClaimLedger storage ledger = _claimLedgers[token];
            uint256 funded = pool.funded;
            if (funded == 0) revert TokenNotFunded(token);
            uint128 live = pool.currentTotal;
            if (promote) {
                live = ledger.pendingTotal;
                pool.currentTotal = live;
            }
            uint256 total = cumulativeTotals[i];
            if (total < live) revert TotalDecreased(token, live, total);
            if (total > funded) revert TotalExceedsFunded(token, total, funded);
            ledger.pendingTotal = uint128(total); // <= funded, which fits
        }

        uint64 activeAt = uint64(block.timestamp) + rootDelay;
        status.pendingEpoch = epoch;
        status.pendingActiveAt = activeAt;
        _status = status;
        _pendingRoot = root;
        emit RootPosted(epoch, root, activeAt, tokens, cumulativeTotals, dataURI);
    }

    /// @notice Drop the pending root before it becomes active. Guardian only; works while paused,
    /// and a root that was pending when the pause began is still pending during it.
    /// @dev Its epoch stays used: the next root takes the following one.
    function cancelRoot() external {
        if (msg.sender != guardian) revert NotGuardian();
        Status memory status = _status;
        if (status.pendingActiveAt == 0 || _isActive(status)) revert NoPendingRoot();
        _status.pendingActiveAt = 0;
        emit RootCanceled(status.pendingEpoch, _pendingRoot);
    }

    /// @notice The root claims are checked against now, and its epoch (zeros before the first).
    function activeRoot() external view returns (bytes32 root, uint64 epoch) {
        Status memory status = _status;
        if (_pendingIsActive(status)) return (_pendingRoot, status.pendingEpoch);
        if (status.currentEpoch == 0) return (0, 0);
        return (_currentRoot, status.currentEpoch);
    }

    /// @notice The posted root still waiting for its delay, if any (zeros otherwise).
    function pendingRoot() external view returns (bytes32 root, uint64 epoch, uint64 activeAt) {
        Status memory status = _status;
        if (status.pendingActiveAt == 0 || _pendingIsActive(status)) return (0, 0, 0);
        return (_pendingRoot, status.pendingEpoch, status.pendingActiveAt);
    }

    /// @notice The highest epoch ever posted (canceled ones included); the next must be this + 1.
    function lastEpoch() external view returns (uint64) {
        return _status.pendingEpoch;
    }

    /// @notice `token`'s cumulative total in the active root: the most its claims may add up to.
    function activeTotal(address token) external view returns (uint256) {
        if (_pendingIsActive(_status)) return _claimLedgers[token].pendingTotal;
        return _poolLedgers[token].currentTotal;
    }

    /// @notice What seeders of `token` were funded with by purchases, and what they claimed.
    function seederPool(address token) external view returns (uint256 funded, uint256 claimedTotal) {
        return (_poolLedgers[token].funded, _claimLedgers[token].claimed);
    }

    // ----- claims -----

    /// @notice Pay `account` what its leaf in the active root says it earned beyond what it claimed.
    /// @dev Anyone may call; the money always goes to `account`.
    /// WARNING: sends ETH to `account`, which may be a contract; state is updated first and the
    /// function is non-reentrant.
    function claim(address account, address token, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 amount)
    {
        (bytes32 root, bool fromPending) = _claimableRoot();
        return _claim(root, fromPending, account, token, cumulativeAmount, proof);
    }

    /// @notice `claim` for a batch, in one transaction. A leaf with nothing left to pay (claimed by
    /// someone first) is skipped, so nobody can make a batch revert by front-running one of its
    /// leaves; any other failing claim reverts the whole batch.
    function claimMany(ClaimRequest[] calldata requests) external nonReentrant returns (uint256 total) {
        (bytes32 root, bool fromPending) = _claimableRoot();
        for (uint256 i; i < requests.length; ++i) {
            ClaimRequest calldata r = requests[i];
            if (r.cumulativeAmount <= _claimed[r.account][r.token] & ~_PAYOUT_BLOCKED) continue;
            total += _claim(root, fromPending, r.account, r.token, r.cumulativeAmount, r.proof);
        }
    }

    /// @notice Pay many leaves of the active root at once, proven together by one OpenZeppelin
    /// multiproof over their standard-tree leaf hashes, in the order the multiproof lists them.
    /// Anyone may call; each leaf's money goes only to its account. A leaf with nothing left to pay
    /// is skipped, as is an account whose ETH payouts are blocked (see `payoutBlocked`); the root's
    /// per-token totals cap the batch as they cap claims, and a leaf past its token's cap reverts
    /// the batch.
    /// @dev ETH goes with `PAYOUT_GAS` (+ the stipend) and no return data. A send that fails leaves
    /// the amount claimable, emits `PayoutFailed` and, for ETH, blocks the account's payouts until
    /// its own claim succeeds, so a recipient that reverts or burns gas costs a batch little and
    /// only once. Each leaf's `claimed` slot is written before its send; the token's claimed total
    /// is kept on the stack over a run of leaves of one token and written once per run (a batch of
    /// one token writes it once), so `seederPool` read by a recipient during its send still shows
    /// the total before the run. Non-reentrant.
    /// @return paidCount How many leaves were paid.
    function payout(PayoutLeaf[] calldata leaves, bytes32[] calldata proof, bool[] calldata proofFlags)
        external
        nonReentrant
        returns (uint256 paidCount)
    {
        (bytes32 root, bool fromPending) = _claimableRoot();
        // No leaves prove nothing (OpenZeppelin accepts the empty set with proof == [root]).
        if (leaves.length == 0) return 0;
        bytes32[] memory hashes = EarningsTree.hashes(leaves);
        if (!MerkleProof.multiProofVerifyCalldata(proof, proofFlags, root, hashes)) revert InvalidProof();
        return _payAll(leaves, fromPending);
    }

    /// @dev Pays proven leaves. A run of leaves of one token keeps the token's claimed total and
    /// cap on the stack and writes the total once, when the run ends.
    function _payAll(PayoutLeaf[] calldata leaves, bool fromPending) private returns (uint256 paidCount) {
        address runToken = leaves[0].token;
        (uint256 runClaimed, uint256 runCap) = _openRun(runToken, fromPending);
        for (uint256 i; i < leaves.length; ++i) {
            PayoutLeaf calldata l = leaves[i];
            address account = l.account;
            address token = l.token;
            uint256 cumulativeAmount = l.cumulativeAmount;
            mapping(address token => uint256) storage claims = _claimed[account];
            uint256 already = claims[token];
            // Paid up (a duplicate leaf included, once its first copy was paid), or blocked.
            if (cumulativeAmount <= already) continue;
            if (token != runToken) {
                _claimLedgers[runToken].claimed = uint128(runClaimed);
                (runClaimed, runCap) = _openRun(token, fromPending);
                runToken = token;
            }
            uint256 amount;
            unchecked {
                amount = cumulativeAmount - already; // > 0
            }
            runClaimed += amount; // checked: a leaf near 2^256 must not wrap past the cap
            if (runClaimed > runCap) revert ClaimExceedsRootTotal(token, runClaimed, runCap);
            if (_payLeaf(claims, account, token, cumulativeAmount, already)) {
                unchecked {
                    ++paidCount;
                }
            } else {
                unchecked {
                    runClaimed -= amount; // added just above
                }
            }
        }
        _claimLedgers[runToken].claimed = uint128(runClaimed); // <= runCap, which fits
    }

    /// @dev `token`'s claimed total and its total in the root payouts are checked against.
    function _openRun(address token, bool fromPending) private view returns (uint256 claimedTotal, uint256 cap) {
        ClaimLedger storage ledger = _claimLedgers[token];
        claimedTotal = ledger.claimed;
        cap = fromPending ? ledger.pendingTotal : _poolLedgers[token].currentTotal;
    }

    /// @dev Pays one leaf's unpaid part: its `claimed` slot first, then the send; a failed send
    /// puts the slot back (blocked, for ETH). Whether it was paid.
    function _payLeaf(
        mapping(address token => uint256) storage claims,
        address account,
        address token,
        uint256 cumulativeAmount,
        uint256 already
    ) private returns (bool paid) {
        uint256 amount;
        unchecked {
            amount = cumulativeAmount - already; // the caller checked it is > 0
        }
        claims[token] = cumulativeAmount;
        paid = _trySend(token, account, amount);
        if (paid) {
            emit Claimed(account, token, amount, cumulativeAmount);
        } else {
            claims[token] = token == address(0) ? already | _PAYOUT_BLOCKED : already;
            emit PayoutFailed(account, token, amount);
        }
    }

    /// @notice Cumulative amount `account` has claimed in `token`.
    function claimed(address account, address token) external view returns (uint256) {
        return _claimed[account][token] & ~_PAYOUT_BLOCKED;
    }

    /// @notice Whether batch payouts skip `account`'s ETH leaves: an ETH payout to it failed, and
    /// it has not claimed ETH itself since.
    function payoutBlocked(address account) external view returns (bool) {
        return _claimed[account][address(0)] & _PAYOUT_BLOCKED != 0;
    }

    function _claim(
        bytes32 root,
        bool fromPending,
        address account,
        address token,
        uint256 cumulativeAmount,
        bytes32[] calldata proof
    ) private returns (uint256 amount) {
        // Checks: an unpaid part, a valid leaf.
        uint256 already = _claimed[account][token] & ~_PAYOUT_BLOCKED;
        if (cumulativeAmount <= already) revert NothingToClaim();
        bytes32 leaf = EarningsTree.leaf(account, token, cumulativeAmount);
        if (!EarningsTree.verify(proof, root, leaf)) revert InvalidProof();
        amount = cumulativeAmount - already;

        // The root's declared total caps what all its leaves together can take.
        ClaimLedger storage ledger = _claimLedgers[token];
        uint256 claimedTotal = ledger.claimed + amount;
        uint256 rootTotal = fromPending ? ledger.pendingTotal : _poolLedgers[token].currentTotal;
        if (claimedTotal > rootTotal) revert ClaimExceedsRootTotal(token, claimedTotal, rootTotal);

        // State, then the transfer. Writing the slot whole also unblocks the account's payouts.
        _claimed[account][token] = cumulativeAmount;
        ledger.claimed = uint128(claimedTotal); // <= rootTotal, which fits
        emit Claimed(account, token, amount, cumulativeAmount);
        _send(token, account, amount);
    }

    /// @dev The root claims are checked against now, and whether it is the pending one.
    function _claimableRoot() private view returns (bytes32 root, bool fromPending) {
        Status memory status = _status;
        if (status.pausedAt != 0) revert EnforcedPause();
        if (_pendingIsActive(status)) return (_pendingRoot, true);
        if (status.currentEpoch == 0) revert NoActiveRoot();
        return (_currentRoot, false);
    }

    function _pendingIsActive(Status memory status) private view returns (bool) {
        return status.pendingActiveAt != 0 && _isActive(status);
    }

    /// @dev Whether the pending root's delay has run out. Root time stands still during a pause:
    /// what counts then is the moment the pause began.
    function _isActive(Status memory status) private view returns (bool) {
        uint256 now_ = status.pausedAt != 0 ? status.pausedAt : block.timestamp;
        return now_ >= status.pendingActiveAt;
    }

    // ----- operator -----

    /// @notice Allow or disallow an ERC-20 for new listings and purchases. Owed balances stay withdrawable.
    function setTokenAllowed(address token, bool allowed) external onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        tokenAllowed[token] = allowed;
        emit TokenAllowed(token, allowed);
    }

    /// @notice Set the account that posts roots.
    function setOracle(address oracle_) external onlyOwner {
        _setOracle(oracle_);
    }

    /// @notice Set the account that may cancel pending roots and pause.
    function setGuardian(address guardian_) external onlyOwner {
        _setGuardian(guardian_);
    }

    /// @notice Set where future operator fees accrue; fees already accrued stay with the old treasury.
    function setTreasury(address treasury_) external onlyOwner {
        _setTreasury(treasury_);
    }

    /// @notice Set the operator's share of each future purchase's pool.
    function setOperatorFee(uint16 operatorFeeBps_) external onlyOwner {
        _setOperatorFee(operatorFeeBps_);
    }

    /// @notice Set the delay of roots posted from now on, within the bounds fixed at deployment.
    function setRootDelay(uint64 rootDelay_) external onlyOwner {
        _setRootDelay(rootDelay_);
    }

    /// @notice Ownership can only be handed over (`transferOwnership`), never renounced: an ownerless
    /// market could never be unpaused.
    function renounceOwnership() public view override onlyOwner {
        revert OwnershipNotRenounceable();
    }

    /// @notice Stop listings, product updates, purchases, roots and claims, and stop the clock of
    /// the pending root. Never stopped: withdrawals of sellers' and the treasury's balances,
    /// `cancelRoot`, `setProductActive` and the owner's functions. Owner or guardian.
    function pause() external {
        if (msg.sender != guardian && msg.sender != owner()) revert NotGuardian();
        _requireNotPaused();
        _status.pausedAt = uint64(block.timestamp);
        emit Paused(msg.sender);
    }

    /// @notice Resume after a pause. Owner only. A root that was pending when the pause began gets
    /// the paused time added to its delay: it becomes claimable after `rootDelay` seconds of
    /// unpaused time, never during or right at the end of a pause.
    function unpause() external onlyOwner {
        Status memory status = _status;
        if (status.pausedAt == 0) revert ExpectedPause();
        if (status.pendingActiveAt > status.pausedAt) {
            uint64 shifted = status.pendingActiveAt + (uint64(block.timestamp) - status.pausedAt);
            status.pendingActiveAt = shifted;
            emit RootDelayed(status.pendingEpoch, shifted);
        }
        status.pausedAt = 0;
        _status = status;
        emit Unpaused(msg.sender);
    }

    /// @notice Whether the contract is paused.
    function paused() external view returns (bool) {
        return _status.pausedAt != 0;
    }

    // ----- internals -----

    function _sellerProduct(uint256 productId) private view returns (Product storage product_) {
        product_ = _products[productId];
        if (product_.seller == address(0)) revert UnknownProduct(productId);
        if (product_.seller != msg.sender) revert NotSeller(productId);
    }

    function _checkTerms(address token, uint256 price, uint16 discountBps) private view {
        if (token != address(0) && !tokenAllowed[token]) revert TokenNotAllowed(token);
        if (price == 0) revert InvalidListing();
        if (discountBps > BPS) revert InvalidBps(discountBps);
        // Keeps every pool within uint128 and price * BPS far from overflow.
        if (price > type(uint128).max) revert InvalidListing();
    }

    function _requireNotPaused() private view {
        if (_status.pausedAt != 0) revert EnforcedPause();
    }

    function _credit(address account, address token, uint256 amount) private {
        if (amount != 0) _balances[account][token] = (_balances[account][token] | _USED) + amount;
    }

    function _send(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            // No return data is copied, so a recipient cannot make the sender pay for a huge one.
            if (!LowLevelCall.callNoReturn(to, amount, "")) revert EthTransferFailed();
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @dev A payout's send, which may fail without reverting: ETH with bounded gas and no return
    /// data, an ERC-20 with OpenZeppelin's `trySafeTransfer`. Reverts if too little gas is left to
    /// give the recipient (or the token) what it is promised.
    function _trySend(address token, address to, uint256 amount) private returns (bool sent) {
        if (token == address(0)) {
            if (gasleft() < _ETH_PAYOUT_GAS_NEEDED) revert PayoutGasTooLow();
            assembly ("memory-safe") {
                sent := call(PAYOUT_GAS, to, amount, 0, 0, 0, 0)
            }
        } else {
            if (gasleft() < _TOKEN_PAYOUT_GAS_NEEDED) revert PayoutGasTooLow();
            sent = IERC20(token).trySafeTransfer(to, amount);
        }
    }

    function _setOracle(address oracle_) private {
        if (oracle_ == address(0)) revert ZeroAddress();
        oracle = oracle_;
        emit OracleSet(oracle_);
    }

    function _setGuardian(address guardian_) private {
        if (guardian_ == address(0)) revert ZeroAddress();
        guardian = guardian_;
        emit GuardianSet(guardian_);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    function _setRootDelay(uint64 rootDelay_) private {
        if (rootDelay_ < minRootDelay || rootDelay_ > maxRootDelay) {
            revert RootDelayOutOfBounds(rootDelay_, minRootDelay, maxRootDelay);
        }
        rootDelay = rootDelay_;
        emit RootDelaySet(rootDelay_);
    }

    function _setOperatorFee(uint16 operatorFeeBps_) private {
        if (operatorFeeBps_ > BPS) revert InvalidBps(operatorFeeBps_);
        operatorFeeBps = operatorFeeBps_;
        emit OperatorFeeSet(operatorFeeBps_);
    }
}
