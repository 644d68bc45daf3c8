// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {LowLevelCall} from "@openzeppelin/contracts/utils/LowLevelCall.sol";
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

    /// @dev Set in every balance slot once it is used, so that a withdrawal leaves the slot nonzero
    /// and the next purchase credits it for 2,900 gas instead of 20,000. Balances are sums of
    /// uint128 amounts and never come near this bit.
    uint256 private constant _USED = 1 << 255;

    /// @dev What every claim and purchase reads first, in one slot.
    struct Status {
        bool paused;
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
    /// @notice The product listed with a torrent infohash, or 0.
    mapping(bytes32 infohash => uint256 productId) public productOfInfohash;
    /// @notice Tokens other than ETH that products may be priced in.
    mapping(address token => bool) public tokenAllowed;
    /// @notice Cumulative amount `account` has claimed in `token`.
    mapping(address account => mapping(address token => uint256)) public claimed;
    /// @dev Withdrawable balances of sellers and the treasury, with the `_USED` bit.
    mapping(address account => mapping(address token => uint256)) private _balances;
    mapping(address token => ClaimLedger) private _claimLedgers;
    mapping(address token => PoolLedger) private _poolLedgers;

    /// @param owner_ The store operator: parameters, allow-list, roles, unpause.
    /// @param oracle_ The account that posts roots.
    /// @param guardian_ The account that may cancel a pending root and pause.
    /// @param treasury_ Where operator fees accrue.
    /// @param operatorFeeBps_ The operator's share of each purchase's pool, in basis points.
    /// @param rootDelay_ Seconds between a root's posting and its first claim.
    constructor(
        address owner_,
        address oracle_,
        address guardian_,
        address treasury_,
        uint16 operatorFeeBps_,
        uint64 rootDelay_
    ) Ownable(owner_) EIP712("seedmarket", "1") {
        _setOracle(oracle_);
        _setGuardian(guardian_);
        _setTreasury(treasury_);
        _setOperatorFee(operatorFeeBps_);
        rootDelay = rootDelay_;
        emit RootDelaySet(rootDelay_);
    }

    // ----- sellers -----

    /// @notice List a product; the caller is its seller.
    /// @param infohash The torrent's v1 SHA-1 infohash, left-aligned in 32 bytes; unique.
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
        if (infohash == 0 || size == 0) revert InvalidListing();
        uint256 existing = productOfInfohash[infohash];
        if (existing != 0) revert InfohashAlreadyListed(existing);
        _checkTerms(token, price, discountBps);

        productId = ++productCount;
        productOfInfohash[infohash] = productId;
        _products[productId] = Product({
            seller: msg.sender,
            discountBps: discountBps,
            active: true,
            size: size,
            token: token,
            price: price,
            infohash: infohash
        });
        emit ProductListed(productId, msg.sender, infohash, size, token, price, discountBps, metadataURI);
    }

    /// @notice Change a product's terms for future purchases. Content (infohash, size) never changes.
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
        product.token = token;
        product.price = price;
        product.discountBps = discountBps;
        emit ProductUpdated(productId, token, price, discountBps, metadataURI);
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
    /// @return purchaseId The purchase's unique, nonzero id.
    function purchase(uint256 productId) external payable returns (uint256 purchaseId) {
        return _purchase(productId, msg.sender);
    }

    /// @notice Buy a product for `buyer`; the caller pays.
    function purchaseFor(uint256 productId, address buyer) external payable returns (uint256 purchaseId) {
        if (buyer == address(0)) revert ZeroAddress();
        return _purchase(productId, buyer);
    }

    function _purchase(uint256 productId, address buyer) private nonReentrant returns (uint256 purchaseId) {
        // Checks: an active product, bought once per buyer.
        _requireNotPaused();
        Product storage product_ = _products[productId];
        address seller = product_.seller;
        if (seller == address(0)) revert UnknownProduct(productId);
        if (!product_.active) revert ProductInactive(productId);
        uint256 previous = purchaseOf[productId][buyer];
        if (previous != 0) revert AlreadyPurchased(productId, buyer, previous);
        address token = product_.token;
        uint256 price = product_.price;
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
    /// @param epoch Strictly higher than every epoch posted before, canceled ones included.
    /// @param tokens Every token whose seeder pool was ever funded, in ascending address order.
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
        if (status.paused) revert EnforcedPause();
        if (root == 0) revert ZeroRoot();
        if (epoch <= status.pendingEpoch) revert StaleEpoch(epoch, status.pendingEpoch);
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

    /// @notice Drop the pending root before it becomes active. Guardian only; works while paused.
    /// @dev Its epoch stays used: the next root needs a higher one.
    function cancelRoot() external {
        if (msg.sender != guardian) revert NotGuardian();
        Status memory status = _status;
        if (status.pendingActiveAt == 0 || block.timestamp >= status.pendingActiveAt) revert NoPendingRoot();
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

    /// @notice The highest epoch ever posted (canceled ones included); the next must be higher.
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

    /// @notice `claim` for a batch, in one transaction; reverts as a whole if any claim fails.
    function claimMany(ClaimRequest[] calldata requests) external nonReentrant returns (uint256 total) {
        (bytes32 root, bool fromPending) = _claimableRoot();
        for (uint256 i; i < requests.length; ++i) {
            ClaimRequest calldata r = requests[i];
            total += _claim(root, fromPending, r.account, r.token, r.cumulativeAmount, r.proof);
        }
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
        uint256 already = claimed[account][token];
        if (cumulativeAmount <= already) revert NothingToClaim();
        bytes32 leaf = EarningsTree.leaf(account, token, cumulativeAmount);
        if (!EarningsTree.verify(proof, root, leaf)) revert InvalidProof();
        amount = cumulativeAmount - already;

        // The root's declared total caps what all its leaves together can take.
        ClaimLedger storage ledger = _claimLedgers[token];
        uint256 claimedTotal = ledger.claimed + amount;
        uint256 rootTotal = fromPending ? ledger.pendingTotal : _poolLedgers[token].currentTotal;
        if (claimedTotal > rootTotal) revert ClaimExceedsRootTotal(token, claimedTotal, rootTotal);

        // State, then the transfer.
        claimed[account][token] = cumulativeAmount;
        ledger.claimed = uint128(claimedTotal); // <= rootTotal, which fits
        emit Claimed(account, token, amount, cumulativeAmount);
        _send(token, account, amount);
    }

    /// @dev The root claims are checked against now, and whether it is the pending one.
    function _claimableRoot() private view returns (bytes32 root, bool fromPending) {
        Status memory status = _status;
        if (status.paused) revert EnforcedPause();
        if (_pendingIsActive(status)) return (_pendingRoot, true);
        if (status.currentEpoch == 0) revert NoActiveRoot();
        return (_currentRoot, false);
    }

    function _pendingIsActive(Status memory status) private view returns (bool) {
        return status.pendingActiveAt != 0 && block.timestamp >= status.pendingActiveAt;
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

    /// @notice Set the delay of roots posted from now on.
    function setRootDelay(uint64 rootDelay_) external onlyOwner {
        rootDelay = rootDelay_;
        emit RootDelaySet(rootDelay_);
    }

    /// @notice Stop listings, purchases, roots and claims; withdrawals and cancels still work.
    /// Owner or guardian.
    function pause() external {
        if (msg.sender != guardian && msg.sender != owner()) revert NotGuardian();
        _requireNotPaused();
        _status.paused = true;
        emit Paused(msg.sender);
    }

    /// @notice Resume after a pause. Owner only.
    function unpause() external onlyOwner {
        if (!_status.paused) revert ExpectedPause();
        _status.paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Whether the contract is paused.
    function paused() external view returns (bool) {
        return _status.paused;
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
        if (_status.paused) revert EnforcedPause();
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

    function _setOperatorFee(uint16 operatorFeeBps_) private {
        if (operatorFeeBps_ > BPS) revert InvalidBps(operatorFeeBps_);
        operatorFeeBps = operatorFeeBps_;
        emit OperatorFeeSet(operatorFeeBps_);
    }
}
