"""The traffic simulator keeps to its rate, its concurrency and its tenants, and counts failures and picks."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from adfame.schemas import PromptRequest
from inference.simulator import (
    BUILTIN_PROMPTS,
    MarketerPick,
    RestMarketer,
    SimulationError,
    SimulationResult,
    Traffic,
    simulate,
    simulate_selections,
)
from inference.tastes import parse_taste
from inference.video import encode_mp4


def test_rate_concurrency_and_tenants() -> None:
    seen: list[PromptRequest] = []
    in_flight = peak = 0
    lock = threading.Lock()

    def submit(request: PromptRequest) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
            seen.append(request)

    frames = {"num_frames": 8}
    traffic = Traffic(
        list(BUILTIN_PROMPTS),
        count=12,
        rate_per_s=40,
        concurrency=2,
        tenants=["nike", "adidas"],
        request_fields=frames,
    )
    result = simulate(submit, traffic)
    assert (result.submitted, result.failed) == (12, 0)
    assert result.seconds >= 11 / 40
    assert peak <= 2
    assert sorted(r.tenant for r in seen) == ["adidas"] * 6 + ["nike"] * 6
    assert all(r.prompt in BUILTIN_PROMPTS and r.num_frames == 8 for r in seen)
    assert sorted(result.request_ids) == sorted(str(r.request_id) for r in seen)


def test_failed_submissions_are_counted() -> None:
    def submit(request: PromptRequest) -> None:
        if request.tenant == "broken":
            raise ConnectionError("broker down")

    traffic = Traffic(["a runner at dawn"], count=4, rate_per_s=100, concurrency=2, tenants=["ok", "broken"])
    result = simulate(submit, traffic)
    assert (result.submitted, result.failed) == (2, 2)


def test_selections_count_picks_failures_and_milestones_and_repeat_with_the_seed() -> None:
    """A visit that fails after its job was submitted counts as submitted and failed, never selected."""
    seen: list[PromptRequest] = []

    def marketer(request: PromptRequest) -> MarketerPick:
        seen.append(request)
        if request.tenant == "flaky":
            raise SimulationError(f"job-{request.seed}", "the job failed")
        return MarketerPick(f"job-{request.seed}", 2, 1 if len(seen) == 3 else None)

    traffic = Traffic(
        list(BUILTIN_PROMPTS), count=6, rate_per_s=100, concurrency=1, tenants=["ok", "flaky"], seed=5
    )

    def run() -> SimulationResult:
        return simulate_selections(marketer, traffic)

    result = run()
    assert (result.submitted, result.selected, result.failed, result.milestones) == (6, 3, 3, [1])
    assert sorted(result.picked_ids) == sorted(f"job-{r.seed}" for r in seen if r.tenant == "ok")
    assert all(r.seed is not None for r in seen)
    first = [(r.prompt, r.seed) for r in seen]
    seen.clear()
    run()
    assert [(r.prompt, r.seed) for r in seen] == first  # the same plan from the same seed


def _api(script: dict[str, list[httpx.Response | Exception]]) -> tuple[httpx.Client, list[str]]:
    """A client whose answers per ``METHOD path`` are played in order (an exception is raised instead)."""
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        where = f"{request.method} {request.url.path}"
        calls.append(where)
        answer = script[where].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(base_url="http://api", transport=httpx.MockTransport(handle)), calls


def _job(status: str) -> httpx.Response:
    video = {"index": 0, "video_url": "http://store/v.mp4"}
    return httpx.Response(
        200, json={"status": status, "candidates": [video] if status == "succeeded" else []}
    )


def test_a_marketer_tries_again_after_not_now_answers_and_a_lost_pick_answer() -> None:
    """503 on submit and poll, a refused connection to the store, a 500 and then a 409 naming its own pick:
    one job, one pick, and the submission is never repeated after the API took it."""
    mp4 = encode_mp4(np.full((4, 16, 16, 3), 200, dtype=np.uint8), fps=8)
    http, calls = _api(
        {
            "POST /generate-video": [httpx.Response(503), httpx.Response(202, json={"job_id": "j1"})],
            "GET /jobs/j1": [httpx.Response(503), _job("running"), _job("succeeded")],
            "GET /v.mp4": [httpx.ConnectError("store restarting"), httpx.Response(200, content=mp4)],
            "POST /jobs/j1/selection": [
                httpx.Response(500),
                httpx.Response(409, json={"detail": "already selected", "selected_candidate": 0}),
            ],
        }
    )
    marketer = RestMarketer("http://api", {"nike": "key"}, parse_taste("bright"), retry_s=30, http=http)
    made = marketer(PromptRequest(tenant="nike", prompt="a runner at dawn", seed=1))
    assert (made.job_id, made.candidate_index, made.milestone) == ("j1", 0, None)
    assert calls.count("POST /generate-video") == 2 and calls.count("POST /jobs/j1/selection") == 2


def test_a_submission_whose_answer_was_lost_is_not_repeated() -> None:
    """A read timeout may come after the API queued the job: a second POST would make a second job."""
    http, calls = _api({"POST /generate-video": [httpx.ReadTimeout("no answer")]})
    marketer = RestMarketer("http://api", {"nike": "key"}, parse_taste("bright"), retry_s=30, http=http)
    with pytest.raises(httpx.ReadTimeout):
        marketer(PromptRequest(tenant="nike", prompt="a runner at dawn", seed=1))
    assert calls == ["POST /generate-video"]
