"""The traffic simulator keeps to its rate, its concurrency and its tenants, and counts failures."""

from __future__ import annotations

import threading
import time

from adfame.schemas import PromptRequest
from inference.simulator import BUILTIN_PROMPTS, simulate


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

    result = simulate(
        submit,
        list(BUILTIN_PROMPTS),
        count=12,
        rate_per_s=40,
        concurrency=2,
        tenants=["nike", "adidas"],
        num_frames=8,
    )
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

    result = simulate(
        submit, ["a runner at dawn"], count=4, rate_per_s=100, concurrency=2, tenants=["ok", "broken"]
    )
    assert (result.submitted, result.failed) == (2, 2)
