"""Settings and fixtures shared by every part's tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dev.devnet import Anvil

REPO = Path(__file__).resolve().parent.parent
LONG = os.environ.get("SEEDMARKET_LONG") == "1"
# `seedmarket seed` asks the router to forward its port by default; in the tests it must not ask
# the machine's own gateway (the tests' traffic stays on loopback and in their own namespaces).
# Subprocesses inherit this; the home-router tests (tests/interop) turn mapping on inside a lab.
os.environ["SEEDMARKET_MAP_PORT"] = "0"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository's root folder."""
    return REPO


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, for the independent JavaScript checks."""
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed; it is needed for the @openzeppelin/merkle-tree checks")
    return path


@pytest.fixture(scope="session")
def manifest() -> Path:
    """The compiled contracts."""
    path = REPO / ".build" / "__local__.json"
    if not path.exists():
        pytest.fail("the contracts are not compiled: run `ape compile` (or `make compile`)")
    return path


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """One anvil for the session; tests deploy their own Marketplace on it."""
    from dev.devnet import Anvil  # noqa: PLC0415 - the tracker's tests need not load the store

    with Anvil() as node:
        yield node
