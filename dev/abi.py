"""Copy the Marketplace's ABI from the compiled manifest into the package (`backend/abi/`), so that
`seedmarket verify-epoch` works from an installed wheel without a checkout or a compiler.

    python -m dev.abi        # after changing the contract and `make compile`; commit the result

Not run by `make compile` on purpose: tests/backend/test_shipped_abi.py fails while the committed
copy differs from the build, so a stale ABI cannot slip into a wheel.
"""

from __future__ import annotations

import json
import sys

from backend.chain import CONTRACT_NAME, SHIPPED_ABI, load_abi
from dev.devstack import MANIFEST


def abi_text() -> str:
    """The ABI as the package ships it: sorted keys, two-space indent, one final newline."""
    return json.dumps(load_abi(MANIFEST, CONTRACT_NAME), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write the shipped ABI if it changed."""
    text = abi_text()
    if SHIPPED_ABI.exists() and SHIPPED_ABI.read_text() == text:
        return
    SHIPPED_ABI.write_text(text)
    sys.stdout.write(f"wrote {SHIPPED_ABI}\n")


if __name__ == "__main__":
    main()
