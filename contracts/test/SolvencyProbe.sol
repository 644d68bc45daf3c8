// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

interface IMarketBooks {
    function balanceOf(address account, address token) external view returns (uint256);
    function seederPool(address token) external view returns (uint256 funded, uint256 claimedTotal);
}

/// @notice Reads a Marketplace's holdings and books in one call, for invariant checks.
contract SolvencyProbe {
    /// @notice Per token: what `market` holds, the sum of the given accounts' withdrawable balances,
    /// and its seeder pool (funded, claimed).
    /// @param tokens Tokens to read, `address(0)` for ETH.
    /// @param accounts Every account that may have a withdrawable balance.
    function books(address market, address[] calldata tokens, address[] calldata accounts)
        external
        view
        returns (uint256[] memory held, uint256[] memory balances, uint256[] memory funded, uint256[] memory claimed)
    {
        uint256 n = tokens.length;
        (held, balances, funded, claimed) = (new uint256[](n), new uint256[](n), new uint256[](n), new uint256[](n));
        for (uint256 i; i < n; ++i) {
            address token = tokens[i];
            held[i] = token == address(0) ? market.balance : IERC20(token).balanceOf(market);
            (funded[i], claimed[i]) = IMarketBooks(market).seederPool(token);
            for (uint256 j; j < accounts.length; ++j) {
                balances[i] += IMarketBooks(market).balanceOf(accounts[j], token);
            }
        }
    }
}
