// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice A contract account that calls back into a target when it receives ETH, to try
/// reentrancy on withdrawals and claims. It records whether the nested call succeeded.
contract ReentrantReceiver {
    address public target;
    bytes public callData;
    bool public attempted;
    bool public lastCallSucceeded;
    bytes public lastCallResult;
    bool public refuseEth;

    /// @notice Set the call made on the next ETH receipt.
    function arm(address target_, bytes calldata data) external {
        target = target_;
        callData = data;
        attempted = false;
    }

    /// @notice Make every ETH transfer to this contract fail.
    function setRefuseEth(bool refuse) external {
        refuseEth = refuse;
    }

    /// @notice Forward any call to `to`, so this contract can act as a seller or buyer.
    function execute(address to, uint256 value, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory result) = to.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
        return result;
    }

    receive() external payable {
        if (refuseEth) revert("refusing ETH");
        if (target == address(0) || attempted) return;
        attempted = true;
        (lastCallSucceeded, lastCallResult) = target.call(callData);
    }
}
