"""Prompts submitted at a steady pace in a background thread until stopped: traffic for a canary.

Why not ``adfame simulate``: a canary's test or benchmark needs requests flowing for as long as the DAG
walks its steps, which is not known in advance, and none left queued afterwards for other consumer groups
to pick up; ``simulate`` sends a fixed count. The requests go through ``inference.jobs.submit`` (row, then
Kafka), exactly as the API queues them.
"""

from __future__ import annotations

import logging
import random
import threading
from types import TracebackType
from typing import Any

from sqlalchemy import Engine

from adfame.messaging import create_producer
from adfame.schemas import PromptRequest
from adfame.settings import Settings
from inference.jobs import submit
from inference.simulator import BUILTIN_PROMPTS

log = logging.getLogger(__name__)


class BackgroundTraffic:
    """``with BackgroundTraffic(...) as traffic:`` submits ``rate_per_s`` requests a second for ``tenant``
    until the block ends; ``traffic.submitted`` holds their ids in order."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        tenant: str,
        rate_per_s: float,
        prompt_seed: int = 0,
        **request_fields: Any,
    ) -> None:
        self.settings, self.engine, self.tenant = settings, engine, tenant
        self.interval_s = 1.0 / rate_per_s
        self.request_fields = request_fields
        self.prompt_seed = prompt_seed
        self.submitted: list[str] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-traffic", daemon=True)

    def _run(self) -> None:
        producer = create_producer(self.settings)
        try:
            # Drawn at random (seeded), not in turn: prompts cycled in order and the canary's deterministic
            # split would give each route its own prompts, and a route's quality would be its prompts'.
            draws = random.Random(self.prompt_seed)
            while not self._stop.wait(self.interval_s):
                prompt = draws.choice(BUILTIN_PROMPTS)
                request = PromptRequest(tenant=self.tenant, prompt=prompt, **self.request_fields)
                try:
                    submit(request, engine=self.engine, producer=producer)
                except Exception:  # counted and logged: a test or bench checks ``failures``
                    log.exception("submitting a request failed")
                    self.failures += 1
                    continue
                self.submitted.append(str(request.request_id))
        finally:
            producer.close()

    def __enter__(self) -> BackgroundTraffic:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
