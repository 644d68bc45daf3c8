// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {EarningsTree} from "../EarningsTree.sol";

/// @notice Exposes `EarningsTree` to tests, beside OpenZeppelin's `MerkleProof` as the reference.
contract EarningsTreeHarness {
    /// @notice A leaf's values and its proof.
    struct Claim {
        address account;
        address token;
        uint256 cumulativeAmount;
        bytes32[] proof;
    }

    /// @notice A root and claims to check against it.
    struct Case {
        bytes32 root;
        Claim[] claims;
    }

    /// @notice The leaf the Marketplace computes for these values.
    function leaf(address account, address token, uint256 cumulativeAmount) external pure returns (bytes32) {
        return EarningsTree.leaf(account, token, cumulativeAmount);
    }

    /// @notice Whether `proof` leads from a raw node hash to `root` (no leaf hashing).
    function verifyLeafHash(bytes32[] calldata proof, bytes32 root, bytes32 leafHash) external pure returns (bool) {
        return EarningsTree.verify(proof, root, leafHash);
    }

    /// @notice Every claim of every case, judged by `EarningsTree` and by OpenZeppelin's `MerkleProof`.
    function check(Case[] calldata cases) external pure returns (bool[] memory ours, bool[] memory openZeppelin) {
        uint256 total;
        for (uint256 i; i < cases.length; ++i) {
            total += cases[i].claims.length;
        }
        ours = new bool[](total);
        openZeppelin = new bool[](total);
        uint256 k;
        for (uint256 i; i < cases.length; ++i) {
            Case calldata c = cases[i];
            for (uint256 j; j < c.claims.length; ++j) {
                Claim calldata claim = c.claims[j];
                bytes32 leafHash = EarningsTree.leaf(claim.account, claim.token, claim.cumulativeAmount);
                ours[k] = EarningsTree.verify(claim.proof, c.root, leafHash);
                openZeppelin[k] = MerkleProof.verifyCalldata(claim.proof, c.root, leafHash);
                ++k;
            }
        }
    }
}
