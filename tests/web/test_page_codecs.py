"""The page's own Keccak-256, EIP-55 checksums and amount formatting, run in Chromium against the
Python implementations."""

from __future__ import annotations

import os

from eth_utils import keccak, to_checksum_address
from playwright.sync_api import Browser

from backend.web.money import format_units
from tests.web.helpers import Shop, goto

LENGTHS = [0, 1, 31, 32, 135, 136, 137, 271, 272, 1000]
AMOUNTS = [
    (0, 18),
    (1, 18),
    (10**18, 18),
    (1_234_567 * 10**15, 18),
    (10**30 + 5, 18),
    (123_456_789, 6),
    (42, 0),
]


def test_keccak_checksums_and_amounts_match_the_python_implementations(browser: Browser, shop: Shop) -> None:
    inputs = [os.urandom(n) for n in LENGTHS]
    addresses = ["0x" + os.urandom(20).hex() for _ in range(20)]
    context = browser.new_context()
    try:
        page = context.new_page()
        goto(page, shop.url)
        hashes, checksums, amounts = page.evaluate(
            """async ([inputs, addresses, amounts]) => {
                const { keccak256, toChecksumAddress } = await import("/static/keccak.js");
                const { formatUnits } = await import("/static/store.js");
                const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
                const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
                return [
                    inputs.map((h) => hex(keccak256(bytes(h)))),
                    addresses.map(toChecksumAddress),
                    amounts.map(([amount, decimals]) => formatUnits(BigInt(amount), decimals)),
                ];
            }""",
            [[b.hex() for b in inputs], addresses, [[str(a), d] for a, d in AMOUNTS]],
        )
    finally:
        context.close()
    assert hashes == [keccak(b).hex() for b in inputs]
    assert checksums == [to_checksum_address(a) for a in addresses]
    assert amounts == [format_units(a, d) for a, d in AMOUNTS]
