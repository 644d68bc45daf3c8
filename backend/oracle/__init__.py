"""The oracle: closes epochs and posts their roots on chain, crash-safe.

- `poster`: the decisions (when an epoch is due, what its transaction carries, what a mined,
  reverted, lost or stuck transaction means for the epoch); epoch statuses and their allowed
  changes are `backend.models.EpochStatus` and `EPOCH_TRANSITIONS`.
- `sender`: durable transactions (sign, broadcast, await, re-broadcast, replace), for any caller
  that stores each signed transaction before broadcasting it.
- `fees`: the fee rules, pure.
- `loop`: the step loop with back-off that the oracle and the keeper (`backend.keeper`) run in.
"""

from backend.oracle.loop import FAULT_ENV
from backend.oracle.poster import Oracle, StepResult

__all__ = ["FAULT_ENV", "Oracle", "StepResult"]
