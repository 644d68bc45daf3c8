// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice An ERC-20 that misbehaves on demand: it calls back into a target during transfers
/// (reentrancy), reports success without moving anything, or reports failure of a transfer out.
contract MaliciousToken is ERC20 {
    enum Mode {
        Honest,
        Reenter,
        LieOnTransferFrom,
        FailTransfer
    }

    Mode public mode;
    address public target;
    bytes public callData;
    bool public lastCallSucceeded;
    bytes public lastCallResult;
    bool private _inCall;

    constructor() ERC20("Malicious", "EVIL") {}

    /// @notice Mint `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Choose the misbehaviour: in `Reenter` mode every transfer calls `target` with `data`.
    function setMode(Mode mode_, address target_, bytes calldata data) external {
        mode = mode_;
        target = target_;
        callData = data;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (mode == Mode.LieOnTransferFrom) return true;
        _reenter();
        return super.transferFrom(from, to, value);
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        if (mode == Mode.FailTransfer) return false;
        _reenter();
        return super.transfer(to, value);
    }

    function _reenter() private {
        if (mode != Mode.Reenter || _inCall) return;
        _inCall = true;
        (lastCallSucceeded, lastCallResult) = target.call(callData);
        _inCall = false;
    }
}
