"""The loop the oracle and the keeper run in: one step after another until told to stop, backing
off after a failure so that an outage of the chain node or the database is survived, not spun on;
and the named points where crash tests kill either of them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from backend.errors import ChainError, ConfigError

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0  # seconds between tries at most, however long an outage lasts
FAULT_ENV = "SEEDMARKET_FAULT_KILL_AT"  # crash tests: SIGKILL ourselves at a named step


def crash_point(name: str, step: str) -> None:
    """Crash tests: die here, hard, when asked to (a real SIGKILL, nothing cleaned up)."""
    if os.environ.get(FAULT_ENV) == step:
        log.warning("%s: killed at %r for a crash test", name, step)
        os.kill(os.getpid(), signal.SIGKILL)


def run_steps(
    name: str,
    stop: threading.Event,
    step: Callable[[], bool],
    *,
    poll_interval: float,
    expected: type[Exception],
) -> None:
    """Call `step` until `stop` is set. `step` returns True when it waited already or has more to
    do at once, False to be called again after the poll interval. A chain error (the node is down,
    say) or an `expected` failure is logged and retried with a doubling delay; a configuration
    error ends the loop (retrying cannot fix it); anything else (a bug, a database outage) is
    logged with its traceback and retried the same way."""
    delay = poll_interval
    while not stop.is_set():
        try:
            again = step()
            delay = max(poll_interval, 1.0)
            if again:
                continue
        except ChainError as exc:  # ChainUnavailable is one
            log.warning("%s: %s; retrying in %.0f s", name, exc, delay)
            delay = min(delay * 2, MAX_BACKOFF)
        except ConfigError as exc:
            log.error("%s stopped: %s", name, exc)
            return
        except expected as exc:
            log.error("%s: %s", name, exc)
            delay = min(delay * 2, MAX_BACKOFF)
        except Exception:  # a bug or a database outage: log it, keep the loop alive
            log.exception("%s: unexpected error; retrying in %.0f s", name, delay)
            delay = min(delay * 2, MAX_BACKOFF)
        stop.wait(delay)
