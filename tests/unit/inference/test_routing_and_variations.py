"""Canary routing and prompt variations: deterministic, distinct, and in the right proportions."""

from __future__ import annotations

import uuid

import pytest

from adfame.schemas import PromptRequest
from inference.routing import bucket_of, route_for
from inference.variations import AXES, candidate_seeds, expand, plan_candidates


def test_routing_is_deterministic_and_close_to_the_weight() -> None:
    ids = [uuid.UUID(int=i * 7919 + 1) for i in range(4000)]
    assert [route_for(i, 25) for i in ids] == [route_for(str(i), 25) for i in ids]
    share = sum(route_for(i, 25) == "challenger" for i in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert {route_for(i, 0) for i in ids} == {"champion"}
    assert {route_for(i, 100) for i in ids} == {"challenger"}


def test_a_request_in_the_canary_stays_there_as_the_weight_grows() -> None:
    ids = [uuid.uuid4() for _ in range(500)]
    for low, high in [(5, 25), (25, 50), (50, 100)]:
        assert all(route_for(i, high) == "challenger" for i in ids if route_for(i, low) == "challenger")


def test_bad_weight_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        route_for(uuid.uuid4(), 101)
    assert 0 <= bucket_of(uuid.uuid4()) < 100


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
