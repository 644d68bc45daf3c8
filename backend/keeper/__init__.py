"""The keeper: pays seeders automatically after each root activates (issue 13).

- `plan`: the rules, pure (which leaves are due, in which batches, smallest gas per payee first);
- `keeper`: the loop, its batches stored as signed transactions before they are sent, through the
  oracle's durable-transaction code (backend.oracle.sender);
- `status`: where an account's unpaid part stands, for the rewards API, page and command.
"""

from backend.keeper.keeper import Keeper, KeeperResult

__all__ = ["Keeper", "KeeperResult"]
