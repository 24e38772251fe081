"""A worker's claim on a request, against PostgreSQL: one round trip, and every redelivery case."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from adfame.repositories.requests import (
    Claim,
    Outcome,
    claim_request,
    fail_unqueued,
    finish_request,
    record_request,
)
from adfame.schemas import PromptRequest

pytestmark = pytest.mark.integration


def _request(tenant: str = "nike", request_id: uuid.UUID | None = None) -> PromptRequest:
    return PromptRequest(request_id=request_id or uuid.uuid4(), tenant=tenant, prompt="sneakers on a beach")


def _state(engine: Engine, request: PromptRequest) -> tuple[str, str, bool]:
    with engine.connect() as conn:
        row = conn.execute(
            text("select tenant, status, started_at from generation_requests where request_id = :id"),
            {"id": str(request.request_id)},
        ).one()
    return row.tenant, row.status, row.started_at is not None


def _finish(engine: Engine, request: PromptRequest, status: str, error: str | None = None) -> None:
    """What the worker's final transaction records about the request."""
    finish_request(engine, request.request_id, Outcome(status, "base", "base", {}, error=error))


def test_a_queued_request_is_claimed_and_marked_running(engine: Engine) -> None:
    request = _request()
    assert record_request(engine, request)
    assert _state(engine, request) == ("nike", "queued", False)
    assert claim_request(engine, request).status == "claimed"
    assert _state(engine, request) == ("nike", "running", True)


def test_a_message_without_a_row_creates_it_running(engine: Engine) -> None:
    request = _request()
    assert claim_request(engine, request).status == "claimed"
    assert _state(engine, request) == ("nike", "running", True)


def test_a_failed_request_is_claimed_again_from_scratch(engine: Engine) -> None:
    """A redelivery after the worker recorded a failure (and crashed before committing the offset)."""
    request = _request()
    claim_request(engine, request)
    _finish(engine, request, "failed", error="boom")
    assert claim_request(engine, request).status == "claimed"
    with engine.connect() as conn:
        status, error, finished_at = conn.execute(
            text("select status, error, finished_at from generation_requests where request_id = :id"),
            {"id": str(request.request_id)},
        ).one()
    assert (status, error, finished_at) == ("running", None, None)


def test_a_succeeded_request_is_done_and_left_alone(engine: Engine) -> None:
    request = _request()
    claim_request(engine, request)
    _finish(engine, request, "succeeded")
    assert claim_request(engine, request).status == "done"
    assert _state(engine, request)[1] == "succeeded"


def test_an_id_of_another_tenant_is_refused_without_touching_its_row(engine: Engine) -> None:
    theirs = _request(tenant="adidas")
    record_request(engine, theirs)
    ours = _request(tenant="nike", request_id=theirs.request_id)
    assert claim_request(engine, ours).status == "other-tenant"
    assert _state(engine, theirs) == ("adidas", "queued", False)


def test_a_redelivered_request_keeps_its_route_seq_and_claims_draw_no_numbers(engine: Engine) -> None:
    """The canary split relies on consecutive numbers fixed at insert (docs/canary.md#routing)."""
    requests = [_request() for _ in range(3)]
    for request in requests:
        record_request(engine, request)
    seqs = [claim_request(engine, request).route_seq for request in requests]
    assert seqs == list(range(seqs[0], seqs[0] + 3)), "numbered in the order they were recorded"
    _finish(engine, requests[0], "failed", error="boom")
    assert claim_request(engine, requests[0]) == Claim("claimed", seqs[0])  # redelivered after a failure
    _finish(engine, requests[1], "succeeded")
    assert claim_request(engine, requests[1]) == Claim("done", seqs[1])  # redelivered after a success
    later = _request()
    record_request(engine, later)
    assert claim_request(engine, later).route_seq == seqs[2] + 1, "no claim drew a number"


def test_a_request_the_api_refused_is_not_served_when_its_message_arrives_late(engine: Engine) -> None:
    """Kafka acked too late: the API marked the request failed and answered 503, so a late delivery is left
    alone (the client may have sent the prompt again, as a new request)."""
    request = _request()
    record_request(engine, request)
    assert fail_unqueued(engine, request.request_id, "not queued: KafkaTimeoutError")
    assert claim_request(engine, request).status == "refused"
    assert _state(engine, request) == ("nike", "failed", False)


def test_a_request_a_worker_claimed_first_is_not_refused_by_a_late_ack(engine: Engine) -> None:
    """The message arrived and a worker claimed it before the API gave up waiting for the ack: the API must
    report it accepted (fail_unqueued says so by changing nothing)."""
    request = _request()
    record_request(engine, request)
    assert claim_request(engine, request).status == "claimed"
    assert not fail_unqueued(engine, request.request_id, "not queued: KafkaTimeoutError")
    assert _state(engine, request) == ("nike", "running", True)
