"""A traffic simulator: replays prompts from the prompt pool at a given rate and concurrency.

The pool is the VidProM prompts curated by ``nightly_etl`` (``prompts.parquet`` of the
latest snapshot); without a snapshot a small built-in pool of ad prompts is used.

``simulate`` only submits. ``simulate_selections`` plays the marketer too, through the REST API as a
person's browser would (``RestMarketer``): it submits each prompt, waits for the job, downloads the
candidates through their presigned URLs, decodes them, picks one with a taste (``inference.tastes``)
and posts the pick. Its prompts, request seeds and noisy picks all come from one seed, so a run can
be repeated; that is how the learning loop is exercised without people.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine

from adfame.contracts import DATASETS_BUCKET
from adfame.repositories.datasets import latest_snapshot_stats
from adfame.schemas import PromptRequest
from adfame.storage import ObjectStore
from adfame.waiting import wait_for
from inference.tastes import Taste, pick
from inference.video import decode_mp4

log = logging.getLogger(__name__)


class SimulationError(RuntimeError):
    """A simulated visit whose job was submitted but that could not end with a pick; names the job."""

    def __init__(self, job_id: str, message: str):
        super().__init__(message)
        self.job_id = job_id


BUILTIN_PROMPTS = (
    "a woman running in sneakers on a beach at sunrise",
    "a basketball player dunking in a neon-lit gym",
    "close-up of running shoes splashing through a puddle",
    "a skateboarder gliding through an empty city street",
    "a yoga class on a rooftop at golden hour",
    "a soccer ball curling into the top corner of the net",
    "a cyclist climbing a mountain road in the rain",
    "friends laughing in matching hoodies at a street market",
)


@dataclass(frozen=True)
class SimulationResult:
    """What a run did. ``request_ids`` are the jobs the API accepted (answered 202) and ``picked_ids`` the
    jobs whose pick it accepted (201), so a fault test can hold the tables to exactly these."""

    submitted: int
    failed: int
    seconds: float
    request_ids: list[str]
    selected: int = 0
    milestones: list[int] = field(default_factory=list)  # retrain milestones the selections completed
    picked_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MarketerPick:
    """What one simulated marketer's visit did: the job, the candidate picked, the milestone completed."""

    job_id: str
    candidate_index: int
    milestone: int | None


def load_prompt_pool(engine: Engine, store: ObjectStore) -> list[str]:
    """Prompts of the latest curated snapshot, or the built-in pool when there is none yet."""
    import pandas as pd

    latest = latest_snapshot_stats(engine)
    if latest:
        key = f"snapshots/{latest['snapshot_id']}/prompts.parquet"
        if store.exists(DATASETS_BUCKET, key):
            frame = pd.read_parquet(io.BytesIO(store.get_bytes(DATASETS_BUCKET, key)), columns=["prompt"])
            prompts = [p for p in frame["prompt"].tolist() if 3 <= len(p.strip()) <= 1000]
            if prompts:
                log.info("prompt pool: %d prompts of snapshot %s", len(prompts), latest["snapshot_id"])
                return prompts
    log.info("prompt pool: no curated snapshot yet, using %d built-in prompts", len(BUILTIN_PROMPTS))
    return list(BUILTIN_PROMPTS)


@dataclass(frozen=True)
class Traffic:
    """What a simulation sends and how: ``count`` requests for ``tenants`` in turn, with prompts drawn from
    ``prompts``, ``rate_per_s`` starts a second and at most ``concurrency`` in flight.

    Every draw comes from ``seed``, so the same traffic repeats; ``request_fields`` go into every request.
    """

    prompts: list[str]
    count: int
    rate_per_s: float
    concurrency: int
    tenants: list[str]
    seed: int = 0
    request_fields: dict[str, Any] = field(default_factory=dict)

    def requests(self, *, seeded: bool) -> list[PromptRequest]:
        """The requests in order; with ``seeded`` each gets a seed of its own (drawn after its prompt)."""
        rng = random.Random(self.seed)
        tenants = itertools.cycle(self.tenants)
        planned = []
        for _ in range(self.count):
            prompt, tenant = rng.choice(self.prompts), next(tenants)
            seed = {"seed": rng.randrange(2**31)} if seeded else {}
            planned.append(PromptRequest(tenant=tenant, prompt=prompt, **seed, **self.request_fields))
        return planned

    def pace(self, task: Callable[[int], None]) -> float:
        """Run ``task(i)`` for each i < count at this traffic's rate and concurrency; the seconds it took."""
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for i in range(self.count):
                due = started + i / self.rate_per_s
                time.sleep(max(0.0, due - time.monotonic()))
                pool.submit(task, i)
        return time.monotonic() - started


def simulate(submit: Callable[[PromptRequest], object], traffic: Traffic) -> SimulationResult:
    """Submit the traffic's requests; a failed submission is counted and logged, never raised."""
    requests = traffic.requests(seeded=False)
    lock = threading.Lock()
    ids: list[str] = []
    failed = 0

    def one(i: int) -> None:
        nonlocal failed
        try:
            submit(requests[i])
            with lock:
                ids.append(str(requests[i].request_id))
        except Exception:
            log.exception("submitting a request failed")
            with lock:
                failed += 1

    seconds = traffic.pace(one)
    result = SimulationResult(len(ids), failed, seconds, ids)
    log.info(
        "simulated %s",
        json.dumps({"submitted": result.submitted, "failed": failed, "seconds": round(result.seconds, 2)}),
    )
    return result


def simulate_selections(
    marketer: Callable[[PromptRequest], MarketerPick], traffic: Traffic
) -> SimulationResult:
    """Like ``simulate``, but each request is a marketer's visit that ends with a pick.

    Each request gets a seed of its own from the traffic's seed, so the same run generates the same
    candidates (on the same model) and the marketer's noisy picks repeat too.
    """
    requests = traffic.requests(seeded=True)
    lock = threading.Lock()
    picks: list[MarketerPick] = []
    submitted: list[str] = []

    def one(i: int) -> None:
        try:
            made = marketer(requests[i])
        except SimulationError as exc:
            log.warning("%s", exc)
            with lock:
                submitted.append(exc.job_id)
            return
        except Exception:
            log.exception("submitting a request failed (prompt %r)", requests[i].prompt)
            return
        with lock:
            picks.append(made)
            submitted.append(made.job_id)

    seconds = traffic.pace(one)
    milestones = sorted(p.milestone for p in picks if p.milestone is not None)
    picked = [p.job_id for p in picks]
    result = SimulationResult(
        len(submitted), traffic.count - len(picks), seconds, submitted, len(picks), milestones, picked
    )
    log.info("simulated %s", json.dumps({"selected": result.selected, "failed": result.failed}))
    return result


# Answers that mean "not now": a service behind the API is down (503, or a proxy's 502/504) or the tenant
# is over its rate (429). The API took nothing from such a call, so it is made again.
TRY_AGAIN_STATUSES = frozenset({429, 502, 503, 504})
# A repeatable call (a status query, a pick, a download) is also made again after a server error.
_REPEATABLE_STATUSES = TRY_AGAIN_STATUSES | {500}


class TryAgain(Exception):
    """The API could not take a call now (an outage or a rate limit); the marketer makes it again."""


def _answer(
    response: httpx.Response, *, again: frozenset[int] = TRY_AGAIN_STATUSES, also_fine: tuple[int, ...] = ()
) -> httpx.Response:
    """The response when it succeeded (or has one of ``also_fine``); TryAgain for a status in ``again``."""
    if response.status_code in again:
        raise TryAgain(f"{response.request.method} {response.request.url.path}: {response.status_code}")
    if response.status_code not in also_fine:
        response.raise_for_status()
    return response


class RestMarketer:
    """A simulated marketer at the REST API, with a taste: one call is one visit, prompt to pick.

    ``keys`` maps each tenant to its API key. The API decides the tenant from the key, so one key may
    stand for several tenant names. ``p_best`` is the chance of picking the best by the taste
    (otherwise a random candidate: a noisy marketer). Thread-safe: visits run side by side.

    Like a person at a browser during an outage, it tries again for up to ``retry_s`` seconds when the
    API answers "not now" (``TRY_AGAIN_STATUSES``) or cannot be reached, but never repeats a submission
    the API may have taken (a lost answer): that would make a second job.
    """

    def __init__(
        self,
        api_url: str,
        keys: dict[str, str],
        taste: Taste,
        *,
        p_best: float = 1.0,
        job_timeout_s: float = 300.0,
        retry_s: float = 120.0,
        http: httpx.Client | None = None,
    ):
        self.keys = keys
        self.taste = taste
        self.p_best = p_best
        self.job_timeout_s = job_timeout_s
        self.retry_s = retry_s
        self.http = http or httpx.Client(base_url=api_url, timeout=60)

    def __call__(self, request: PromptRequest) -> MarketerPick:
        headers = {"X-API-Key": self.keys[request.tenant]}
        job_id = self._submit(request, headers)
        try:
            return self._pick(job_id, request, headers)
        except Exception as exc:  # whatever went wrong, the summary counts the job as submitted
            raise SimulationError(job_id, f"job {job_id}: no pick: {exc.__class__.__name__}: {exc}") from exc

    def close(self) -> None:
        self.http.close()

    def _pick(self, job_id: str, request: PromptRequest, headers: dict[str, str]) -> MarketerPick:
        """Wait for the job, judge its candidates with the taste and post the pick."""
        job = self._wait(job_id, headers)
        candidates = sorted(job["candidates"], key=lambda c: c["index"])
        frames = [decode_mp4(self._download(c["video_url"])) for c in candidates]
        rng = random.Random(f"pick:{request.seed}:{request.prompt}")
        chosen = candidates[pick(self.taste, frames, rng, self.p_best)]["index"]
        return MarketerPick(job_id, chosen, self._post_pick(job_id, chosen, headers))

    def _post_pick(self, job_id: str, chosen: int, headers: dict[str, str]) -> int | None:
        """Post the pick, again after a "not now" or a lost answer; the milestone it completed, if known.

        A repeat is safe: a job takes one selection, and a 409 naming this very candidate means an
        earlier attempt was recorded (its answer, and so its milestone, was lost on the way).
        """

        def post() -> httpx.Response:
            answer = self.http.post(
                f"/jobs/{job_id}/selection", json={"candidate_index": chosen}, headers=headers
            )
            return _answer(answer, again=_REPEATABLE_STATUSES, also_fine=(409,))

        answer = wait_for(
            post, what=f"the pick of job {job_id} recorded", timeout_s=self.retry_s, retry_on=_RETRIED
        )
        if answer.status_code == 409 and answer.json().get("selected_candidate") != chosen:
            answer.raise_for_status()
        return answer.json().get("milestone") if answer.status_code != 409 else None

    def _submit(self, request: PromptRequest, headers: dict[str, str]) -> str:
        """Submit the prompt; again only after a "not now" or a connection that never reached the API."""
        body = request.model_dump(
            include={"prompt", "num_candidates", "num_frames", "fps", "height", "width", "seed"}
        )

        def post() -> httpx.Response:
            return _answer(self.http.post("/generate-video", json=body, headers=headers))

        answer = wait_for(
            post,
            what="the job accepted",
            timeout_s=self.retry_s,
            retry_on=(TryAgain, httpx.ConnectError),
        )
        return answer.json()["job_id"]

    def _wait(self, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
        def job() -> dict[str, Any]:
            answer = self.http.get(f"/jobs/{job_id}", headers=headers)
            return _answer(answer, again=_REPEATABLE_STATUSES).json()

        done = wait_for(
            job,
            what=f"job {job_id} finished",
            timeout_s=self.job_timeout_s,
            interval_s=0.5,
            done=lambda j: j["status"] in ("succeeded", "failed"),
            retry_on=_RETRIED,
        )
        if done["status"] != "succeeded":
            raise RuntimeError(f"the job failed: {done['error']}")
        return done

    def _download(self, url: str) -> bytes:
        # A presigned URL of the object store: absolute, no API key; the store may be restarting.
        return wait_for(
            lambda: _answer(self.http.get(url), again=_REPEATABLE_STATUSES).content,
            what="a candidate downloaded",
            timeout_s=self.retry_s,
            retry_on=_RETRIED,
        )


# What a repeatable call (a status query, a pick, a download) is made again after.
_RETRIED = (TryAgain, httpx.TransportError)
