"""The cyclic garbage collector in a long-running process: a peer, the tracker, the store.

Once a process has imported its code (web3, FastAPI, SQLAlchemy, rich: ~220,000 objects for the
store), those objects live as long as it does, yet every full collection walks them all again.
In bench/swarm.py that was a 0.1-0.16 s pause of the event loop every ~1.2 s, every peer's
transfers stalled meanwhile. Frozen (`gc.freeze`, as CPython's documentation suggests for a
process that has finished starting), they are left out of every collection; objects made later
are collected as before.
"""

from __future__ import annotations

import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def freeze_imported() -> None:
    """Collect once, then keep everything alive now out of later collections. Call it when the
    process has imported what it runs, before its event loop starts the work."""
    gc.collect()
    gc.freeze()


def run_frozen(main: Coroutine[Any, Any, T]) -> T:
    """A peer process's event loop (uvloop) running `main`, started with the imported heap frozen."""
    import uvloop  # noqa: PLC0415 - not loaded by a command's `--help`

    freeze_imported()
    return uvloop.run(main)
