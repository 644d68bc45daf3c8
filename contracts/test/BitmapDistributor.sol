// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @notice The usual yardstick of Merkle claim gas, for `bench/gas.py` only: a one-shot ERC-20
/// distributor in the style of Uniswap's MerkleDistributor. One claimed bit per leaf index,
/// leaves `keccak256(abi.encodePacked(index, account, amount))`, sorted-pair proofs, the proof
/// copied to memory, `transfer`'s result required. None of the Marketplace's cumulative amounts,
/// pause, root delay or per-token cap.
contract BitmapDistributor {
    IERC20 public immutable token;
    bytes32 public immutable merkleRoot;
    mapping(uint256 word => uint256 bits) private _claimed;

    event Claimed(uint256 index, address account, uint256 amount);

    error AlreadyClaimed();
    error InvalidProof();
    error TransferFailed();

    constructor(IERC20 token_, bytes32 merkleRoot_) {
        token = token_;
        merkleRoot = merkleRoot_;
    }

    /// @notice Whether leaf `index` was claimed.
    function isClaimed(uint256 index) public view returns (bool) {
        return _claimed[index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @notice Pay leaf `index` its `amount`, once.
    function claim(uint256 index, address account, uint256 amount, bytes32[] calldata proof) external {
        if (isClaimed(index)) revert AlreadyClaimed();
        bytes32 leaf = keccak256(abi.encodePacked(index, account, amount));
        if (!MerkleProof.verify(proof, merkleRoot, leaf)) revert InvalidProof();
        _claimed[index >> 8] |= 1 << (index & 0xff);
        if (!token.transfer(account, amount)) revert TransferFailed();
        emit Claimed(index, account, amount);
    }
}
