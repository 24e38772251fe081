"""A traffic simulator: replays prompts from the prompt pool at a given rate and concurrency.

The pool is the VidProM prompts curated by ``nightly_etl`` (``prompts.parquet`` of the
latest snapshot); without a snapshot a small built-in pool of ad prompts is used.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from adfame.contracts import DATASETS_BUCKET
from adfame.repositories.datasets import latest_snapshot_stats
from adfame.schemas import PromptRequest
from adfame.storage import ObjectStore

log = logging.getLogger(__name__)

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
    submitted: int
    failed: int
    seconds: float
    request_ids: list[str]


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


def simulate(
    submit,
    prompts: list[str],
    *,
    count: int,
    rate_per_s: float,
    concurrency: int,
    tenants: list[str],
    seed: int = 0,
    **request_fields,
) -> SimulationResult:
    """Submit ``count`` requests, starting at most ``rate_per_s`` per second, ``concurrency`` in flight."""
    rng = random.Random(seed)
    tenant_cycle = itertools.cycle(tenants)
    lock = threading.Lock()
    ids: list[str] = []
    failed = 0

    def one(prompt: str, tenant: str) -> None:
        nonlocal failed
        request = PromptRequest(tenant=tenant, prompt=prompt, **request_fields)
        try:
            submit(request)
            with lock:
                ids.append(str(request.request_id))
        except Exception:
            log.exception("submitting a request failed")
            with lock:
                failed += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for i in range(count):
            due = started + i / rate_per_s
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(one, rng.choice(prompts), next(tenant_cycle))
    result = SimulationResult(len(ids), failed, time.monotonic() - started, ids)
    log.info(
        "simulated %s",
        json.dumps({"submitted": result.submitted, "failed": failed, "seconds": round(result.seconds, 2)}),
    )
    return result
