"""The prompt message rejects what a worker could not honour, with a reason; completion events say how."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from adfame.schemas import MAX_EVENT_ERROR_CHARS, GenerationEvent, PromptRequest


def test_defaults_and_round_trip() -> None:
    request = PromptRequest(tenant="nike", prompt="  a runner at dawn  ")
    assert request.prompt == "a runner at dawn"
    assert (request.num_candidates, request.num_frames, request.fps) == (5, 16, 8)
    assert request.duration_s == 2.0
    assert PromptRequest.model_validate_json(request.model_dump_json()) == request


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"prompt": ""}, "at least 3"),
        ({"prompt": "   \t "}, "at least 3"),
        ({"prompt": "x" * 1001}, "at most 1000"),
        ({"prompt": "bad\x00text"}, "control characters"),
        ({"prompt": 42}, "valid string"),
        ({"num_frames": 0}, "greater than or equal to 1"),
        ({"fps": 500}, "less than or equal to 60"),
        ({"height": 50}, "multiple of 16"),
        ({"tenant": "Nike Inc"}, "pattern"),
        ({"unexpected": 1}, "Extra inputs"),
    ],
)
def test_invalid_requests_name_the_problem(change: dict, reason: str) -> None:
    body = {"tenant": "nike", "prompt": "a runner at dawn", "request_id": str(uuid.uuid4()), **change}
    with pytest.raises(ValidationError, match=reason):
        PromptRequest.model_validate(body)


def test_a_completion_event_fails_exactly_when_it_carries_an_error() -> None:
    request_id = uuid.uuid4()
    done = GenerationEvent.finished(
        request_id, "nike", model_version="base", route="base", candidates=["nike/x/0.mp4"]
    )
    assert (done.status, done.candidates, done.error) == ("succeeded", ["nike/x/0.mp4"], None)
    failed = GenerationEvent.finished(
        request_id, "nike", model_version="m/2", route="challenger", error="OSError: " + "x" * 900
    )
    assert (failed.status, failed.candidates) == ("failed", [])
    assert failed.error.startswith("OSError: ") and len(failed.error) == MAX_EVENT_ERROR_CHARS
