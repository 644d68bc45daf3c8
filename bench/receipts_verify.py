"""Receipt verification per second on one core: our verifier against eth-account's
`encode_typed_data` + `Account.recover_message`, on the same receipts in the same run.

    python bench/receipts_verify.py [--receipts 2000] [--rounds 7]

Ends with one JSON line: ours and peer in receipts/s (buyer-signed receipts); goal >= 15,000/s.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from eth_account import Account
from eth_account.messages import encode_typed_data

from tracker.receipts import (
    Domain,
    Receipt,
    ReceiptKey,
    ReceiptVerifier,
    SignedKey,
    SignedReceipt,
    recover_signer,
    sign_receipt,
    sign_receipt_key,
)

DOMAIN = Domain(
    chain_id=11155111, verifying_contract=bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
)
GOAL = 15_000
NOW = 1_700_000_000


def make_receipts(count: int) -> tuple[list[SignedReceipt], list[SignedReceipt]]:
    """`count` buyer-signed receipts, and `count` signed by session keys (ten buyers' keys)."""
    buyer_key = (7).to_bytes(32, "big")
    direct = []
    for number in range(count):
        receipt = Receipt(
            purchase_id=1 + number % 50, seeder=(number % 97 + 1).to_bytes(20, "big"), byte_count=number
        )
        direct.append(SignedReceipt(receipt, sign_receipt(DOMAIN, receipt, buyer_key)))
    delegated = []
    session_keys = [(1000 + n).to_bytes(32, "big") for n in range(10)]
    delegations = []
    for number, session_key in enumerate(session_keys):
        address = bytes.fromhex(Account.from_key(session_key).address[2:])
        key = ReceiptKey(purchase_id=number + 1, key=address, expires=NOW + 3600)
        delegations.append(SignedKey(key, sign_receipt_key(DOMAIN, key, buyer_key)))
    for number in range(count):
        which = number % 10
        receipt = Receipt(
            purchase_id=which + 1, seeder=(number % 97 + 1).to_bytes(20, "big"), byte_count=number
        )
        signature = sign_receipt(DOMAIN, receipt, session_keys[which])
        delegated.append(SignedReceipt(receipt, signature, delegations[which]))
    return direct, delegated


def rates(works: list[tuple[Callable[[], None], int]], rounds: int) -> list[float]:
    """Items per second of each (work, items), best of `rounds` interleaved runs. Time is the
    thread's CPU time: on a shared machine wall time mostly measures the neighbours."""
    best = [float("inf")] * len(works)
    for _ in range(rounds):
        for index, (work, _) in enumerate(works):
            start = time.thread_time()
            work()
            best[index] = min(best[index], time.thread_time() - start)
    return [count / seconds for (_, count), seconds in zip(works, best, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receipts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    direct, delegated = make_receipts(args.receipts)
    count = len(direct)

    def ours_direct() -> None:
        verifier = ReceiptVerifier(DOMAIN)
        for signed in direct:
            verifier.verify(signed, NOW)

    def ours_delegated() -> None:
        verifier = ReceiptVerifier(DOMAIN)  # a fresh cache: 10 key checks, then cached
        for signed in delegated:
            verifier.verify(signed, NOW)

    digests = [DOMAIN.digest(signed.receipt.struct_hash()) for signed in direct]

    def recovery_only() -> None:
        for digest, signed in zip(digests, direct, strict=True):
            recover_signer(digest, signed.signature)

    typed = [signed.receipt.typed_data(DOMAIN) for signed in direct]

    peer_count = max(200, count // 8)  # eth-account is slow; a smaller sample keeps the run short
    peer_typed, peer_signed = typed[:peer_count], direct[:peer_count]

    def eth_account_sample() -> None:
        for data, signed in zip(peer_typed, peer_signed, strict=True):
            Account.recover_message(encode_typed_data(full_message=data), signature=signed.signature)

    labels = [
        "ours: buyer-signed",
        "ours: session-key-signed (key cached)",
        "libsecp256k1 recovery alone (floor)",
        "eth-account encode_typed_data + recover",
    ]
    measured = rates(
        [
            (ours_direct, count),
            (ours_delegated, count),
            (recovery_only, count),
            (eth_account_sample, peer_count),
        ],
        args.rounds,
    )
    rows = list(zip(labels, measured, strict=True))
    ours, peer = rows[0][1], rows[3][1]
    print(f"receipt verification, one core, {count} receipts, best of {args.rounds} (thread CPU time)")
    print(f"{'':42} {'receipts/s':>12} {'us each':>9} {'vs eth-account':>15}")
    for label, value in rows:
        print(f"{label:42} {value:12,.0f} {1e6 / value:9.1f} {value / peer:14.1f}x")
    print(f"goal >= {GOAL:,}/s: {'met' if ours >= GOAL else 'NOT met'}")
    print(
        json.dumps(
            {
                "name": "receipts_verify",
                "ours": round(ours),
                "peer": round(peer),
                "ratio": round(ours / peer, 2),
                "unit": "receipts/s",
                "ours_session_key": round(rows[1][1]),
                "recovery_floor": round(rows[2][1]),
                "goal": GOAL,
            }
        )
    )


if __name__ == "__main__":
    main()
