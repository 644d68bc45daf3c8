// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

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
contract Marketplace is IMarketplace, Ownable2Step, Pausable, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice Basis points in one whole.
    uint16 public constant BPS = 10_000;

    /// @dev Cumulative root totals of one token: for the current root and for the pending one.
    struct Totals {
        uint128 current;
        uint128 pending;
    }

    /// @dev What the seeders of one token were funded with, and what they claimed so far.
    struct Pool {
        uint128 funded;
        uint128 claimed;
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

    mapping(uint256 productId => Product) private _products;
    /// @notice The unique, nonzero purchase id of `buyer` for `productId`, or 0.
    mapping(uint256 productId => mapping(address buyer => uint256 purchaseId)) public purchaseOf;
    /// @notice The product listed with a torrent infohash, or 0.
    mapping(bytes32 infohash => uint256 productId) public productOfInfohash;
    /// @notice Tokens other than ETH that products may be priced in.
    mapping(address token => bool) public tokenAllowed;
    /// @notice Withdrawable balance of a seller or the treasury.
    mapping(address account => mapping(address token => uint256)) public balanceOf;
    /// @notice Cumulative amount `account` has claimed in `token`.
    mapping(address account => mapping(address token => uint256)) public claimed;
    mapping(address token => Pool) private _pools;
    mapping(address token => Totals) private _totals;

    bytes32 private _currentRoot;
    bytes32 private _pendingRoot;
    uint64 private _currentEpoch;
    uint64 private _pendingEpoch;
    uint64 private _pendingActiveAt; // 0 when there is no pending root
    /// @notice The highest epoch ever posted (canceled ones included); the next must be higher.
    uint64 public lastEpoch;

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
    ) external whenNotPaused returns (uint256 productId) {
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
    ) external whenNotPaused {
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

    function _purchase(uint256 productId, address buyer)
        private
        nonReentrant
        whenNotPaused
        returns (uint256 purchaseId)
    {
        // Checks: an active product, bought once per buyer.
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
        balanceOf[seller][token] += sellerAmount;
        balanceOf[treasury][token] += fee;
        if (seeders != 0) {
            Pool storage p = _pools[token];
            uint256 funded = p.funded;
            if (funded == 0) ++fundedTokenCount;
            p.funded = SafeCast.toUint128(funded + seeders);
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
        amount = balanceOf[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw();
        balanceOf[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, amount);
        _send(token, msg.sender, amount);
    }

    // ----- roots -----

    /// @notice Post the Merkle root of everyone's cumulative earnings for `epoch`.
    /// @param tokens Every token whose seeder pool was ever funded, in ascending address order.
    /// @param cumulativeTotals Each token's sum of all leaves: never lower than the last live root's,
    /// never more than the token's funded seeder pool.
    /// @param dataURI Where the tree dump and the receipts behind it are published.
    /// @dev The root becomes claimable `rootDelay` seconds later; a previous pending root must have
    /// become active first (or been canceled).
    function postRoot(
        bytes32 root,
        uint64 epoch,
        address[] calldata tokens,
        uint256[] calldata cumulativeTotals,
        string calldata dataURI
    ) external whenNotPaused {
        if (msg.sender != oracle) revert NotOracle();
        if (root == 0) revert ZeroRoot();
        uint64 last = lastEpoch;
        if (epoch <= last) revert StaleEpoch(epoch, last);
        uint256 count = tokens.length;
        if (count != cumulativeTotals.length) revert LengthMismatch();
        if (count != fundedTokenCount) revert TokensIncomplete(count, fundedTokenCount);

        // A pending root that became active is now the current one.
        uint64 pendingAt = _pendingActiveAt;
        bool promote = pendingAt != 0;
        if (promote) {
            if (block.timestamp < pendingAt) revert RootPending(_pendingEpoch, pendingAt);
            _currentRoot = _pendingRoot;
            _currentEpoch = _pendingEpoch;
        }

        for (uint256 i; i < count; ++i) {
            address token = tokens[i];
            if (i != 0 && token <= tokens[i - 1]) revert TokensNotSorted();
            uint256 funded = _pools[token].funded;
            if (funded == 0) revert TokenNotFunded(token);
            Totals storage t = _totals[token];
            uint128 live = promote ? t.pending : t.current;
            uint256 total = cumulativeTotals[i];
            if (total < live) revert TotalDecreased(token, live, total);
            if (total > funded) revert TotalExceedsFunded(token, total, funded);
            t.current = live;
            t.pending = uint128(total); // <= funded, which fits
        }

        uint64 activeAt = uint64(block.timestamp) + rootDelay;
        _pendingRoot = root;
        _pendingEpoch = epoch;
        _pendingActiveAt = activeAt;
        lastEpoch = epoch;
        emit RootPosted(epoch, root, activeAt, tokens, cumulativeTotals, dataURI);
    }

    /// @notice Drop the pending root before it becomes active. Guardian only.
    function cancelRoot() external {
        if (msg.sender != guardian) revert NotGuardian();
        uint64 pendingAt = _pendingActiveAt;
        if (pendingAt == 0 || block.timestamp >= pendingAt) revert NoPendingRoot();
        emit RootCanceled(_pendingEpoch, _pendingRoot);
        delete _pendingRoot;
        delete _pendingEpoch;
        delete _pendingActiveAt;
    }

    /// @notice The root claims are checked against now, and its epoch (zero before the first).
    function activeRoot() public view returns (bytes32 root, uint64 epoch) {
        (root, epoch,) = _activeRoot();
    }

    /// @notice The posted root still waiting for its delay, if any (zeros otherwise).
    function pendingRoot() external view returns (bytes32 root, uint64 epoch, uint64 activeAt) {
        uint64 pendingAt = _pendingActiveAt;
        if (pendingAt == 0 || block.timestamp >= pendingAt) return (0, 0, 0);
        return (_pendingRoot, _pendingEpoch, pendingAt);
    }

    /// @notice `token`'s cumulative total in the active root: the most its claims may add up to.
    function activeTotal(address token) public view returns (uint256) {
        (,, bool fromPending) = _activeRoot();
        Totals memory t = _totals[token];
        return fromPending ? t.pending : t.current;
    }

    /// @notice What seeders of `token` were funded with by purchases, and what they claimed.
    function seederPool(address token) external view returns (uint256 funded, uint256 claimedTotal) {
        Pool memory p = _pools[token];
        return (p.funded, p.claimed);
    }

    // ----- claims -----

    /// @notice Pay `account` what its leaf in the active root says it earned beyond what it claimed.
    /// @dev Anyone may call; the money always goes to `account`.
    /// WARNING: sends ETH to `account`, which may be a contract; state is updated first and the
    /// function is non-reentrant.
    function claim(address account, address token, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 amount)
    {
        (bytes32 root,, bool fromPending) = _activeRoot();
        return _claim(root, fromPending, account, token, cumulativeAmount, proof);
    }

    /// @notice `claim` for a batch, in one transaction; reverts as a whole if any claim fails.
    function claimMany(ClaimRequest[] calldata requests)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 total)
    {
        (bytes32 root,, bool fromPending) = _activeRoot();
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
        // Checks: a live root, an unpaid part, a valid leaf.
        if (root == 0) revert NoActiveRoot();
        uint256 already = claimed[account][token];
        if (cumulativeAmount <= already) revert NothingToClaim();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, token, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        amount = cumulativeAmount - already;

        // The root's declared total caps what all its leaves together can take.
        Pool storage p = _pools[token];
        uint256 claimedTotal = p.claimed + amount;
        Totals storage t = _totals[token];
        uint256 rootTotal = fromPending ? t.pending : t.current;
        if (claimedTotal > rootTotal) revert ClaimExceedsRootTotal(token, claimedTotal, rootTotal);

        // State, then the transfer.
        claimed[account][token] = cumulativeAmount;
        p.claimed = uint128(claimedTotal); // <= rootTotal, which fits
        emit Claimed(account, token, amount, cumulativeAmount);
        _send(token, account, amount);
    }

    function _activeRoot() private view returns (bytes32 root, uint64 epoch, bool fromPending) {
        uint64 pendingAt = _pendingActiveAt;
        if (pendingAt != 0 && block.timestamp >= pendingAt) return (_pendingRoot, _pendingEpoch, true);
        return (_currentRoot, _currentEpoch, false);
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

    /// @notice Stop listings, purchases, roots and claims. Owner or guardian.
    function pause() external {
        if (msg.sender != guardian && msg.sender != owner()) revert NotGuardian();
        _pause();
    }

    /// @notice Resume after a pause. Owner only.
    function unpause() external onlyOwner {
        _unpause();
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

    function _send(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EthTransferFailed();
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
