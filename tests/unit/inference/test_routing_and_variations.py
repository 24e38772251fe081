"""Canary routing and prompt variations: deterministic, distinct, and in the right proportions."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from adfame.schemas import PromptRequest
from inference.routing import bucket_of, route_for
from inference.variations import AXES, candidate_seeds, expand, plan_candidates

# Windows of 100 consecutive sequence numbers: the first ones, and some far along the sequence.
WINDOW_STARTS = [*range(1, 1200), *(2**k + j for k in (20, 31, 40, 52) for j in range(0, 3000, 97))]


def _challenger_counts(start: int, length: int = 100) -> list[int]:
    """How many of ``length`` consecutive requests go to the challenger, for each weight 0..100."""
    buckets = [bucket_of(seq) for seq in range(start, start + length)]
    return [sum(b < weight for b in buckets) for weight in range(101)]


def test_any_100_consecutive_requests_match_every_weight_within_2_points() -> None:
    worst = 0
    for start in WINDOW_STARTS:
        counts = _challenger_counts(start)
        worst = max(worst, *(abs(count - weight) for weight, count in enumerate(counts)))
    assert worst <= 2


def test_the_split_holds_beyond_100_requests_too() -> None:
    for start in (1, 5_000, 2**40):
        counts = _challenger_counts(start, length=1000)
        assert all(abs(count - 10 * weight) <= 5 for weight, count in enumerate(counts))


def test_a_hash_would_not_hold_the_split() -> None:
    """Why the sequence: sha256 of the request id, the rule before it, over windows of 100 at 50 %."""
    ids = [uuid.UUID(int=i * 7919 + 1) for i in range(10_000)]
    hashed = [int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big") % 100 for i in ids]
    misses = [abs(sum(b < 50 for b in hashed[k : k + 100]) - 50) for k in range(0, 10_000, 100)]
    assert sum(m > 5 for m in misses) > 15  # 23 of these 100 windows; the sequence: none


def test_routing_is_deterministic_per_request() -> None:
    seqs = [1, 2, 99, 10**6 + 3, 2**62 + 1]
    assert [route_for(s, 25) for s in seqs] == [route_for(s, 25) for s in seqs]
    assert [bucket_of(s) for s in seqs] == [61, 23, 18, 84, 86]  # the same on every machine, forever
    assert {route_for(s, 0) for s in range(1, 500)} == {"champion"}
    assert {route_for(s, 100) for s in range(1, 500)} == {"challenger"}


def test_a_request_in_the_canary_stays_there_as_the_weight_grows() -> None:
    seqs = range(1, 2000)
    for low, high in [(5, 25), (25, 50), (50, 100)]:
        assert all(route_for(s, high) == "challenger" for s in seqs if route_for(s, low) == "challenger")


def test_bad_weight_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        route_for(1, 101)
    assert all(0 <= bucket_of(s) < 100 for s in range(1, 1000))


def test_variations_are_distinct_deterministic_and_keep_the_prompt() -> None:
    rid = uuid.uuid4()
    first = expand("a woman running in sneakers on a beach", 5, rid)
    assert first == expand("a woman running in sneakers on a beach", 5, rid)
    assert len(set(first)) == 5
    assert all(v.startswith("a woman running in sneakers on a beach, ") for v in first)
    assert all(any(m in v for m in AXES["camera"]) for v in first)
    assert expand("x y z", 3, rid, "identical") == ["x y z"] * 3
    with pytest.raises(ValueError, match="unknown variation strategy"):
        expand("x y z", 3, rid, "nope")


def test_seeds_are_stable_and_distinct() -> None:
    rid = uuid.uuid4()
    assert list(candidate_seeds(rid, 5)) == list(candidate_seeds(rid, 5))
    assert len(set(candidate_seeds(rid, 5))) == 5
    assert list(candidate_seeds(rid, 3, seed=10)) == [10, 11, 12]


def test_a_requests_candidates_are_planned_from_the_request_alone() -> None:
    request = PromptRequest(tenant="nike", prompt="a runner at dawn", num_candidates=3, seed=10)
    planned = plan_candidates(request)
    assert planned == plan_candidates(request)
    assert [c.index for c in planned] == [0, 1, 2] and [c.seed for c in planned] == [10, 11, 12]
    assert [c.variation_prompt for c in planned] == expand(request.prompt, 3, request.request_id)
    assert [c.object_key for c in planned] == [f"nike/{request.request_id}/{i}.mp4" for i in range(3)]
