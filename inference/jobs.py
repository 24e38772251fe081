"""Submitting generation requests and waiting for them: the producer side of the loop.

A request is first recorded in PostgreSQL (status ``queued``) and then put on
``adfame.prompts``; the row exists before any worker can see the message, so a
status query never races the worker. Used by ``adfame generate``, the traffic
simulator and the REST API; the rows themselves are ``adfame.repositories.requests``'.
"""

from __future__ import annotations

import uuid

from kafka import KafkaProducer
from sqlalchemy import Engine

from adfame.contracts import PROMPTS_TOPIC
from adfame.repositories.requests import Job, get_job, record_request
from adfame.schemas import PromptRequest
from adfame.waiting import WaitTimeout, wait_for


def submit(
    request: PromptRequest, *, engine: Engine, producer: KafkaProducer, timeout_s: float = 10.0
) -> None:
    """Record the request, then publish it (key: request id) and wait for the broker's ack."""
    record_request(engine, request)
    future = producer.send(PROMPTS_TOPIC, key=str(request.request_id), value=request.model_dump(mode="json"))
    future.get(timeout=timeout_s)


def wait_for_job(
    engine: Engine, request_id: uuid.UUID | str, timeout_s: float = 600.0, poll_s: float = 0.5
) -> Job:
    """Poll until the request succeeded or failed; TimeoutError names the request and its last status."""
    try:
        return wait_for(
            lambda: get_job(engine, request_id),
            what=f"request {request_id} finished",
            timeout_s=timeout_s,
            interval_s=poll_s,
            done=lambda job: job is not None and job.done,
        )
    except WaitTimeout as exc:
        status = exc.last.status if exc.last else "unknown"
        raise TimeoutError(
            f"request {request_id} still {status} after {timeout_s:.0f}s; "
            "is a worker running? (`adfame worker`)"
        ) from exc
