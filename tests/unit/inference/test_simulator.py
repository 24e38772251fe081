"""The traffic simulator keeps to its rate, its concurrency and its tenants, and counts failures and picks."""

from __future__ import annotations

import threading
import time

from adfame.schemas import PromptRequest
from inference.simulator import (
    BUILTIN_PROMPTS,
    MarketerPick,
    SimulationError,
    SimulationResult,
    Traffic,
    simulate,
    simulate_selections,
)


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
    assert all(r.seed is not None for r in seen)
    first = [(r.prompt, r.seed) for r in seen]
    seen.clear()
    run()
    assert [(r.prompt, r.seed) for r in seen] == first  # the same plan from the same seed
