// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title seedmarket Marketplace interface
/// @notice Listings, escrowed purchases, pull withdrawals, Merkle roots of seeder earnings and claims.
/// @dev Token `address(0)` stands for ETH everywhere. Amounts are in the token's smallest unit.
interface IMarketplace {
    /// @notice A product as the contract's own rules read it.
    struct Product {
        address seller;
        uint16 discountBps;
        bool active;
        uint64 size;
        address token;
        uint32 termsVersion; // 1 at listing, + 1 at every `updateProduct`
        uint256 price;
        bytes32 infohash;
    }

    /// @notice One claim of a batch: the Merkle leaf `(account, token, cumulativeAmount)` and its proof.
    struct ClaimRequest {
        address account;
        address token;
        uint256 cumulativeAmount;
        bytes32[] proof;
    }

    /// @notice One leaf of a batch payout: the Merkle leaf `(account, token, cumulativeAmount)`.
    struct PayoutLeaf {
        address account;
        address token;
        uint256 cumulativeAmount;
    }

    // ----- events -----

    event ProductListed(
        uint256 indexed productId,
        address indexed seller,
        bytes32 indexed infohash,
        uint64 size,
        address token,
        uint256 price,
        uint16 discountBps,
        string metadataURI
    );
    event ProductUpdated(
        uint256 indexed productId,
        address token,
        uint256 price,
        uint16 discountBps,
        string metadataURI,
        uint32 termsVersion
    );
    event ProductActiveSet(uint256 indexed productId, bool active);
    event Purchased(
        uint256 indexed purchaseId,
        uint256 indexed productId,
        address indexed buyer,
        address token,
        uint256 price,
        uint256 sellerAmount,
        uint256 operatorFee,
        uint256 seederPool
    );
    event Withdrawn(address indexed account, address indexed token, uint256 amount);
    event RootPosted(
        uint64 indexed epoch, bytes32 root, uint64 activeAt, address[] tokens, uint256[] cumulativeTotals, string dataURI
    );
    event RootCanceled(uint64 indexed epoch, bytes32 root);
    /// @notice A pause moved the pending root's activation later by the paused time.
    event RootDelayed(uint64 indexed epoch, uint64 activeAt);
    event Claimed(address indexed account, address indexed token, uint256 amount, uint256 cumulativeAmount);
    /// @notice A batch payout could not send `account` its `amount`: it stays claimable, and for ETH
    /// the account's payouts are blocked until its own claim succeeds.
    event PayoutFailed(address indexed account, address indexed token, uint256 amount);
    event OracleSet(address oracle);
    event GuardianSet(address guardian);
    event TreasurySet(address treasury);
    event OperatorFeeSet(uint16 operatorFeeBps);
    event RootDelaySet(uint64 rootDelay);
    event TokenAllowed(address indexed token, bool allowed);
    /// @notice The same as OpenZeppelin `Pausable`'s.
    event Paused(address account);
    event Unpaused(address account);

    // ----- errors -----

    error ZeroAddress();
    error InvalidBps(uint256 bps);
    error InvalidListing();
    error TokenNotAllowed(address token);
    error UnknownProduct(uint256 productId);
    error NotSeller(uint256 productId);
    error ProductInactive(uint256 productId);
    error AlreadyPurchased(uint256 productId, address buyer, uint256 purchaseId);
    error WrongPayment(uint256 expected, uint256 sent);
    /// @notice The product's current terms differ from those the buyer agreed to.
    error TermsChanged(uint256 productId, address token, uint256 price, uint32 termsVersion);
    error TokenTransferShortfall(uint256 expected, uint256 received);
    error NothingToWithdraw();
    error EthTransferFailed();
    error NotOracle();
    error NotGuardian();
    error ZeroRoot();
    error EpochNotNext(uint64 epoch, uint64 expected);
    error LengthMismatch();
    error TokensIncomplete(uint256 given, uint256 funded);
    error TokensNotSorted();
    error TokenNotFunded(address token);
    error TotalDecreased(address token, uint256 previous, uint256 total);
    error TotalExceedsFunded(address token, uint256 total, uint256 funded);
    error RootPending(uint64 epoch, uint64 activeAt);
    error NoPendingRoot();
    error NoActiveRoot();
    error NothingToClaim();
    error InvalidProof();
    error ClaimExceedsRootTotal(address token, uint256 claimedTotal, uint256 rootTotal);
    /// @notice A payout's transaction has too little gas left to give a recipient its full share.
    error PayoutGasTooLow();
    /// @notice The same as OpenZeppelin `Pausable`'s.
    error EnforcedPause();
    error ExpectedPause();
    error InvalidRootDelayBounds(uint64 minRootDelay, uint64 maxRootDelay);
    error RootDelayOutOfBounds(uint64 rootDelay, uint64 minRootDelay, uint64 maxRootDelay);
    error OwnershipNotRenounceable();
}
