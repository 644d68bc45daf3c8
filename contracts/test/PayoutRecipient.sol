// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice A contract seeder for batch payouts: it accepts ETH, reverts, burns every unit of gas it
/// is given, or spends a set amount of gas first, as a smart wallet behind a proxy does. It can also
/// claim for itself.
contract PayoutRecipient {
    enum Mode {
        Accept,
        Revert,
        BurnAll,
        Spend
    }

    // One slot, read once per receipt: a stipend-sized budget has no room for more.
    Mode public mode;
    uint64 public spend; // gas to spend on each receipt in `Spend` mode

    /// @notice Choose how the next ETH receipts behave.
    function setMode(Mode mode_, uint64 spend_) external {
        mode = mode_;
        spend = spend_;
    }

    /// @notice Call `to` with `data`, so the contract can claim for itself.
    function execute(address to, bytes calldata data) external {
        (bool ok, bytes memory result) = to.call(data);
        if (!ok) {
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
    }

    receive() external payable {
        Mode mode_ = mode;
        if (mode_ == Mode.Revert) revert("no ETH here");
        if (mode_ == Mode.BurnAll) {
            while (true) {}
        }
        if (mode_ == Mode.Spend) {
            uint256 until = gasleft() - spend;
            while (gasleft() > until) {}
        }
    }
}
