"""Submitting generation requests and reading their state: the producer side of the loop.

A request is first recorded in PostgreSQL (status ``queued``) and then put on
``adfame.prompts``; the row exists before any worker can see the message, so a
status query never races the worker. Used by ``adfame generate``, the traffic
simulator and the REST API.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import Engine, text

from adfame.contracts import PROMPTS_TOPIC
from adfame.schemas import PromptRequest

TERMINAL = ("succeeded", "failed")


@dataclass(frozen=True)
class Candidate:
    index: int
    variation_prompt: str
    seed: int
    object_key: str


@dataclass(frozen=True)
class Job:
    request_id: uuid.UUID
    tenant: str
    prompt: str
    status: str
    num_frames: int
    fps: int
    model_version: str | None
    route: str | None
    timings: dict[str, Any]
    error: str | None
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


# The request's row as the producer records it; ``started_at`` is the database's clock, like
# ``finished_at`` (the table checks that one never precedes the other).
_INSERT_REQUEST = """
insert into generation_requests (request_id, tenant, prompt, num_candidates, num_frames, fps, height, width,
    seed, status, submitted_at, started_at)
values (:request_id, :tenant, :prompt, :num_candidates, :num_frames, :fps, :height, :width, :seed,
    :status, :submitted_at, case when :status = 'running' then now() end)
"""


def _request_row(request: PromptRequest, status: str) -> dict[str, Any]:
    return {**request.model_dump(exclude={"schema_version"}), "status": status}


def record_request(engine: Engine, request: PromptRequest, status: str = "queued") -> bool:
    """Insert the request's row unless it exists; True when this call created it."""
    with engine.begin() as conn:
        result = conn.execute(
            text(_INSERT_REQUEST + "on conflict (request_id) do nothing"), _request_row(request, status)
        )
    return result.rowcount == 1


def claim_request(engine: Engine, request: PromptRequest) -> str:
    """Mark the request running for a worker, in one round trip when all is well.

    Returns ``"claimed"``; ``"done"`` when it already succeeded (a redelivery); ``"other-tenant"``
    when its id belongs to another tenant's request. The row is created here when the producer
    never recorded it (a message put on the topic by other means). A failed or interrupted
    attempt is started afresh: its error and finish time are cleared.
    """
    with engine.begin() as conn:
        claimed = conn.execute(
            text(
                _INSERT_REQUEST
                + """
                on conflict (request_id) do update
                set status = 'running', started_at = now(), finished_at = null, error = null
                where generation_requests.tenant = excluded.tenant
                    and generation_requests.status <> 'succeeded'
                returning request_id
                """
            ),
            _request_row(request, "running"),
        ).first()
        if claimed is not None:
            return "claimed"
        tenant = conn.execute(
            text("select tenant from generation_requests where request_id = :id"),
            {"id": str(request.request_id)},
        ).scalar_one()
    return "other-tenant" if tenant != request.tenant else "done"


def submit(
    request: PromptRequest, *, engine: Engine, producer: KafkaProducer, timeout_s: float = 10.0
) -> None:
    """Record the request, then publish it (key: request id) and wait for the broker's ack."""
    record_request(engine, request)
    future = producer.send(PROMPTS_TOPIC, key=str(request.request_id), value=request.model_dump(mode="json"))
    future.get(timeout=timeout_s)


def get_job(engine: Engine, request_id: uuid.UUID | str, tenant: str | None = None) -> Job | None:
    """The request and its candidates; None when unknown (or owned by another tenant, when given)."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text("""
            select request_id, tenant, prompt, status, num_frames, fps, model_version, route, timings, error
            from generation_requests where request_id = :id
            """),
                {"id": str(request_id)},
            )
            .mappings()
            .first()
        )
        if row is None or (tenant is not None and row["tenant"] != tenant):
            return None
        candidates = conn.execute(
            text("""
            select candidate_index, variation_prompt, seed, object_key from candidates
            where request_id = :id order by candidate_index
            """),
            {"id": str(request_id)},
        ).all()
    return Job(**dict(row), candidates=[Candidate(*c) for c in candidates])


def wait_for_job(
    engine: Engine, request_id: uuid.UUID | str, timeout_s: float = 600.0, poll_s: float = 0.5
) -> Job:
    """Poll until the request succeeded or failed; TimeoutError names the request and its last status."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(engine, request_id)
        if job is not None and job.done:
            return job
        if time.monotonic() > deadline:
            status = job.status if job else "unknown"
            raise TimeoutError(
                f"request {request_id} still {status} after {timeout_s:.0f}s; "
                "is a worker running? (`adfame worker`)"
            )
        time.sleep(poll_s)
