"""How the API answers a prompt whose Kafka ack came too late: refused, unless a worker already has it.

``Services.queue`` with stand-ins for the send and the row update: what is tested is the decision between
503 (``MessagingError``) and accepted, which decides whether a client that tries again gets the job twice.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from adfame.messaging import MessagingError
from adfame.schemas import PromptRequest
from adfame.settings import Settings
from inference import api_services
from inference.api_services import ApiOptions, Services


class Producers:
    def get(self) -> object:
        return object()


def _services(monkeypatch: pytest.MonkeyPatch, *, worker_has_it: bool) -> tuple[Services, list[uuid.UUID]]:
    marked: list[uuid.UUID] = []

    def late_ack(*_args: Any, **_kwargs: Any) -> None:
        raise KafkaTimeoutError("no ack within 10 s")

    def fail_unqueued(_engine: object, request_id: uuid.UUID, _reason: str) -> bool:
        marked.append(request_id)
        return not worker_has_it

    monkeypatch.setattr(api_services, "submit", late_ack)
    monkeypatch.setattr(api_services, "fail_unqueued", fail_unqueued)
    services = Services(Settings(), ApiOptions(), None, None, Producers(), None, None, None)  # type: ignore[arg-type]
    return services, marked


def test_a_late_ack_refuses_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    services, marked = _services(monkeypatch, worker_has_it=False)
    request = PromptRequest(tenant="nike", prompt="a runner at dawn")
    with pytest.raises(MessagingError, match="could not be queued"):
        services.queue(request)
    assert marked == [request.request_id]


def test_a_late_ack_of_a_job_a_worker_claimed_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    services, marked = _services(monkeypatch, worker_has_it=True)
    request = PromptRequest(tenant="nike", prompt="a runner at dawn")
    services.queue(request)  # no 503: the message arrived and the job is under way
    assert marked == [request.request_id]
