"""Settings shared by every part's tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LONG = os.environ.get("SEEDMARKET_LONG") == "1"


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
