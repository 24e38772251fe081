"""One request through the worker's steps: generate and store, record, publish; and how failures split.

The model server, the object store, the producer and the repository's write are stand-ins that keep
what they were given: what is tested is the worker's path (which outcome, which event, which uploads
stay), not the services (tests/integration/test_worker.py runs the real ones).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from adfame.repositories.requests import Outcome
from adfame.schemas import PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStoreError
from inference import worker as worker_module
from inference.model import Generation
from inference.worker import Worker


class Server:
    """Makes ``frames`` for every prompt, or raises ``error``."""

    def __init__(self, frames: np.ndarray | None = None, error: Exception | None = None) -> None:
        self.frames = frames if frames is not None else np.zeros((4, 16, 16, 3), dtype=np.uint8)
        self.error = error

    def generate(self, version: Any, prompts: list[str], seeds: list[int], **_: Any) -> Generation:
        if self.error is not None:
            raise self.error
        timings = {"activate_s": 0.0, "denoise_s": 0.1, "decode_s": 0.01}
        return Generation(videos=[self.frames] * len(prompts), timings=timings)


class Store:
    def __init__(self, outage: bool = False) -> None:
        self.objects: dict[str, bytes] = {}
        self.outage = outage

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        if self.outage:
            raise ObjectStoreError("object store unreachable")
        self.objects[key] = data

    def remove(self, bucket: str, key: str) -> None:
        self.objects.pop(key, None)


class Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.sent.append(value)

    def flush(self, timeout: float) -> None:
        pass


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Outcome]:
    """The outcomes the worker records (instead of writing them to PostgreSQL)."""
    outcomes: list[Outcome] = []

    def record(_engine: object, _request_id: uuid.UUID, outcome: Outcome) -> None:
        outcomes.append(outcome)

    monkeypatch.setattr(worker_module, "finish_request", record)
    return outcomes


def _serve(server: Server, store: Store) -> tuple[PromptRequest, Producer]:
    producer = Producer()
    settings = Settings(inference_threads=1)
    # No engine or consumer: without a registry the router asks no one, and serve() never consumes.
    worker = Worker(settings, server, engine=None, store=store, producer=producer, consumer=None)  # type: ignore[arg-type]
    request = PromptRequest(tenant="nike", prompt="a runner at dawn", num_candidates=3)
    try:
        worker.serve(request, datetime.now(UTC), kafka_lag_s=0.01, route_seq=1)
    finally:
        worker.videos.close()
    return request, producer


def test_a_request_is_generated_stored_recorded_and_published(recorded: list[Outcome]) -> None:
    store = Store()
    request, producer = _serve(Server(), store)
    (outcome,) = recorded
    keys = [f"nike/{request.request_id}/{i}.mp4" for i in range(3)]
    assert (outcome.status, outcome.route, outcome.model_version) == ("succeeded", "base", "base")
    assert [c.object_key for c in outcome.candidates] == keys and sorted(store.objects) == keys
    assert outcome.timings.keys() >= {"queue_wait_s", "kafka_lag_s", "activate_s", "denoise_s", "decode_s"}
    assert outcome.timings.keys() >= {"encode_s", "upload_s", "store_s", "total_s"}
    (event,) = producer.sent
    assert (event["status"], event["candidates"], event["error"]) == ("succeeded", keys, None)


def test_a_pipeline_error_fails_only_the_request(recorded: list[Outcome]) -> None:
    store = Store()
    _, producer = _serve(Server(error=ValueError("height must be a multiple of 16")), store)
    (outcome,) = recorded
    assert (outcome.status, outcome.candidates) == ("failed", [])
    assert outcome.error == "ValueError: height must be a multiple of 16"
    assert [(e["status"], e["route"], e["error"]) for e in producer.sent] == [
        ("failed", "base", "ValueError: height must be a multiple of 16")
    ]
    assert store.objects == {}


def test_a_candidate_that_cannot_be_encoded_leaves_no_uploads(recorded: list[Outcome]) -> None:
    store = Store()
    _, producer = _serve(Server(frames=np.zeros((0, 16, 16, 3), dtype=np.uint8)), store)
    assert [o.status for o in recorded] == ["failed"] and "without frames" in recorded[0].error
    assert store.objects == {}, "a failed request keeps no videos"
    assert [e["status"] for e in producer.sent] == ["failed"]


def test_an_object_store_outage_is_not_the_requests_fault(recorded: list[Outcome]) -> None:
    with pytest.raises(ObjectStoreError):
        _serve(Server(), Store(outage=True))
    assert recorded == [], "nothing is recorded: the message is read again"


def test_a_request_the_api_refused_is_neither_served_nor_published(
    recorded: list[Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka delivered the message after the API had answered 503 for it: the claim says ``refused``, and
    the worker leaves it (the client may have sent the prompt again, as a new request)."""
    from types import SimpleNamespace

    from adfame.repositories.requests import Claim

    monkeypatch.setattr(worker_module, "claim_request", lambda _engine, _request: Claim("refused", 7))
    server, store, producer = Server(), Store(), Producer()
    worker = Worker(Settings(), server, engine=None, store=store, producer=producer, consumer=None)  # type: ignore[arg-type]
    request = PromptRequest(tenant="nike", prompt="a runner at dawn")
    record = SimpleNamespace(
        topic="adfame.prompts", partition=0, offset=3, key=str(request.request_id),
        value=request.model_dump_json().encode(), timestamp=-1,
    )  # fmt: skip
    try:
        worker.handle(record)
    finally:
        worker.videos.close()
    assert (recorded, producer.sent, store.objects) == ([], [], {})
