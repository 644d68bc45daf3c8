"""Upload slots and tracker answers: the choker's ordering and the announce response parser."""

from __future__ import annotations

import random

import bencodepy
import pytest

from tracker.peer.announcer import MIN_INTERVAL, AnnounceError, parse_response
from tracker.peer.choker import Candidate, Choker, PlainPeers


def test_receipt_paying_peers_take_slots_before_faster_plain_peers():
    choker = Choker(slots=2, policy=PlainPeers.AFTER_PAYING, rng=random.Random(1))
    candidates = [
        Candidate("plain-fast", paying=False, rate=1e9),
        Candidate("paying-slow", paying=True, rate=1.0),
        Candidate("paying-slower", paying=True, rate=0.5),
    ]
    assert choker.choose(candidates) == {"paying-slow", "paying-slower"}
    assert not choker.has_room(1, candidate_paying=False, waiting_paying=1)
    assert choker.has_room(1, candidate_paying=False, waiting_paying=0)


def test_the_store_seed_ranks_everyone_by_rate_and_rotates_one_optimistic_slot():
    choker = Choker(slots=3, policy=PlainPeers.SERVE, rng=random.Random(2))
    candidates = [Candidate(f"p{rate}", paying=rate % 2 == 0, rate=float(rate)) for rate in range(10)]
    seen = set()
    for _ in range(12):
        chosen = choker.choose(candidates)
        assert {"p9", "p8"} <= chosen and len(chosen) == 3
        seen |= chosen - {"p9", "p8"}
    assert len(seen) > 1  # the optimistic slot moved


def test_announce_responses_give_compact_v4_and_v6_peers():
    body = bencodepy.encode(
        {
            "interval": 5,
            "peers": bytes([127, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0, 0]),  # port 0 is skipped
            "peers6": bytes(15) + b"\x01" + b"\x1a\xe2",
        }
    )
    response = parse_response(body)
    assert response.interval == MIN_INTERVAL
    assert response.peers == [("127.0.0.1", 6881), ("::1", 6882)]


@pytest.mark.parametrize(
    "body",
    [
        b"d14:failure reason9:not yours",
        b"d5:peers5:abcdee",
        b"d8:intervali1e5:peers6:abcdef",  # truncated bencoding
        b"l1:xe",
    ],
)
def test_failures_and_malformed_announce_responses_raise(body):
    with pytest.raises(AnnounceError):
        parse_response(body)
