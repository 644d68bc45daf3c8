// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title The Marketplace's owner: OpenZeppelin's `TimelockController`, set up in one transaction
/// @notice Every parameter change of the Marketplace (oracle, guardian, treasury, fee, root delay,
/// allow-list, unpause) is proposed here and executes no sooner than `getMinDelay()` later. The
/// guardian, who can cancel a pending root, can cancel a pending change too: it holds the
/// canceller role beside the proposer.
/// @dev Nothing of the audited contract is changed except that its delay can never drop below
/// `delayFloor`, which the deployment sets to at least the Marketplace's `maxRootDelay`: then no
/// parameter change (a new oracle or guardian, a shorter root delay) lands before the root it
/// would rescue or exploit could have been vetoed. The timelock administers itself (no admin).
contract SeedmarketTimelock is TimelockController {
    /// @notice The lowest delay the timelock may ever be given.
    uint256 public immutable delayFloor;

    error DelayBelowFloor(uint256 delay, uint256 floor);

    /// @param minDelay The initial delay of every operation; at least `delayFloor_`.
    /// @param delayFloor_ The lowest delay `updateDelay` may set, for good.
    /// @param proposer The operator: proposes and cancels operations.
    /// @param guardian Cancels operations (the proposer can too).
    /// @param executor Who executes a ready operation; `address(0)` lets anyone.
    constructor(uint256 minDelay, uint256 delayFloor_, address proposer, address guardian, address executor)
        TimelockController(minDelay, _one(proposer), _one(executor), address(0))
    {
        if (minDelay < delayFloor_) revert DelayBelowFloor(minDelay, delayFloor_);
        delayFloor = delayFloor_;
        _grantRole(CANCELLER_ROLE, guardian);
    }

    /// @inheritdoc TimelockController
    function updateDelay(uint256 newDelay) public override {
        if (newDelay < delayFloor) revert DelayBelowFloor(newDelay, delayFloor);
        super.updateDelay(newDelay);
    }

    function _one(address account) private pure returns (address[] memory accounts) {
        accounts = new address[](1);
        accounts[0] = account;
    }
}
