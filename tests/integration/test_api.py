"""The REST API on the real stack: PostgreSQL (a fresh database), Kafka and the object store.

The app is served by uvicorn on a free port and called over HTTP. The worker's part is done by
the tests themselves, as the worker does it (rows plus real mp4 objects), so no model is needed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from api_support import complete_request, complete_when_submitted, insert_request
from kafka import TopicPartition
from sqlalchemy import Engine, text

from adfame import cli, db
from adfame.contracts import PROMPTS_TOPIC, VIDEOS_BUCKET
from adfame.db import create_engine_for
from adfame.messaging import create_consumer
from adfame.repositories.requests import Outcome, finish_request, get_job
from adfame.schemas import MAX_PROMPT_CHARS, PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore
from adfame.waiting import wait_for
from inference.api import create_app
from inference.auth import create_api_key, parse_key_id, revoke_api_key

pytestmark = pytest.mark.integration

TENANT = "acme"
OTHER_TENANT = "globex"


@pytest.fixture(scope="module")
def store(settings: Settings) -> ObjectStore:
    store = ObjectStore(settings)
    store.ensure_bucket(VIDEOS_BUCKET)
    return store


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[str, str]:
    return {TENANT: create_api_key(engine, TENANT), OTHER_TENANT: create_api_key(engine, OTHER_TENANT)}


@pytest.fixture(scope="module")
def api(api_url: str, keys: dict[str, str]) -> Iterator[httpx.Client]:
    """The first tenant's client (Bearer key)."""
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {keys[TENANT]}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def other_api(api_url: str, keys: dict[str, str]) -> Iterator[httpx.Client]:
    """The second tenant's client (X-API-Key header)."""
    with httpx.Client(base_url=api_url, headers={"X-API-Key": keys[OTHER_TENANT]}, timeout=30) as c:
        yield c


@pytest.fixture
def finished_job(engine: Engine, store: ObjectStore) -> uuid.UUID:
    request_id = insert_request(engine, TENANT)
    complete_request(engine, store, request_id, TENANT)
    return request_id


def _detail(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail, response.text
    return detail


# ---- submitting -----------------------------------------------------------------------------------


def test_submit_records_the_job_and_produces_the_prompt_message(
    api: httpx.Client, engine: Engine, settings: Settings
) -> None:
    consumer = create_consumer(f"test-api-{uuid.uuid4().hex[:8]}", [], settings)
    try:
        partitions = [TopicPartition(PROMPTS_TOPIC, p) for p in consumer.partitions_for_topic(PROMPTS_TOPIC)]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for tp in partitions:
            consumer.position(tp)  # fix the start before producing

        body = {
            "prompt": "A sunset over the ocean in the style of a watercolor painting",
            "num_frames": 16,
            "fps": 8,
        }
        response = api.post("/generate-video", json=body)
        assert response.status_code == 202, response.text
        accepted = response.json()
        job_id = accepted["job_id"]
        assert accepted["status"] == "queued" and accepted["status_url"] == f"/jobs/{job_id}"

        def received() -> Any:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == job_id:
                        return record
            return None

        record = wait_for(received, what="the prompt message on adfame.prompts", timeout_s=20)
    finally:
        consumer.close()

    message = PromptRequest.model_validate_json(record.value)
    assert str(message.request_id) == job_id
    assert (message.tenant, message.prompt, message.num_frames, message.fps) == (
        TENANT,
        body["prompt"],
        16,
        8,
    )
    assert message.num_candidates == 5
    row = get_job(engine, job_id)
    assert (
        row is not None
        and row.tenant == TENANT
        and row.prompt == body["prompt"]
        and (row.num_frames, row.fps) == (16, 8)
    )
    assert row.status == "queued"


def test_wait_returns_the_finished_job_in_the_missions_shape(
    api: httpx.Client, engine: Engine, store: ObjectStore
) -> None:
    prompt = f"a woman running in sneakers on a beach {uuid.uuid4().hex[:6]}"

    worker = complete_when_submitted(engine, store, prompt, TENANT, timeout_s=20)
    response = api.post("/generate-video", json={"prompt": prompt, "wait": True, "wait_timeout_s": 30})
    worker.join()
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded"
    assert (job["frames"], job["fps"], job["duration"]) == (16, 8, 2.0)
    assert len(job["candidates"]) == 5
    assert job["video_url"] == job["candidates"][0]["video_url"]
    assert httpx.get(job["video_url"], timeout=30).status_code == 200


def test_wait_that_times_out_answers_202_with_the_current_status(api: httpx.Client) -> None:
    response = api.post("/generate-video", json={"prompt": "a red car on a mountain road", "wait": True,
                                                 "wait_timeout_s": 0.3})  # fmt: skip
    assert response.status_code == 202, response.text
    assert response.json()["status"] in ("queued", "running")


# ---- reading jobs ---------------------------------------------------------------------------------


def test_job_has_candidates_with_presigned_urls_that_download(
    api: httpx.Client, finished_job: uuid.UUID, store: ObjectStore
) -> None:
    response = api.get(f"/jobs/{finished_job}")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["model_version"] == "base" and job["route"] == "champion"
    assert set(job["timings"]) == {"queue_wait_s", "denoise_s", "decode_s", "upload_s"}
    assert [c["index"] for c in job["candidates"]] == [0, 1, 2, 3, 4]
    assert job["selected_candidate"] is None
    for candidate in job["candidates"]:
        download = httpx.get(candidate["video_url"], timeout=30)
        assert download.status_code == 200
        key = f"{TENANT}/{finished_job}/{candidate['index']}.mp4"
        assert download.content == store.get_bytes(VIDEOS_BUCKET, key)
        assert download.content[4:8] == b"ftyp"


def test_another_tenants_job_is_not_found(other_api: httpx.Client, finished_job: uuid.UUID) -> None:
    response = other_api.get(f"/jobs/{finished_job}")
    assert response.status_code == 404
    assert str(finished_job) in _detail(response)
    response = other_api.post(f"/jobs/{finished_job}/selection", json={"candidate_index": 0})
    assert response.status_code == 404


def test_both_key_headers_work_and_bad_keys_are_401(
    api_url: str, engine: Engine, keys: dict[str, str], finished_job: uuid.UUID
) -> None:
    path = f"/jobs/{finished_job}"
    assert httpx.get(api_url + path, headers={"X-API-Key": keys[TENANT]}).status_code == 200
    assert httpx.get(api_url + path, headers={"Authorization": f"Bearer {keys[TENANT]}"}).status_code == 200

    missing = httpx.get(api_url + path)
    assert missing.status_code == 401 and "missing API key" in _detail(missing)
    revoked_key = create_api_key(engine, TENANT)
    assert revoke_api_key(engine, revoked_key)
    forged = keys[TENANT][:-4] + ("AAAA" if not keys[TENANT].endswith("AAAA") else "BBBB")
    for bad in ("nonsense", forged, revoked_key, "af_0123456789abcdef_" + "x" * 43):
        response = httpx.get(api_url + path, headers={"X-API-Key": bad})
        assert response.status_code == 401, bad
        assert "unknown or revoked API key" in _detail(response)


def test_cli_revokes_a_key_given_in_clear_or_by_id_once(
    api_url: str,
    engine: Engine,
    finished_job: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(db, "engine", lambda: engine)  # the CLI's database: this module's own
    by_key, by_id = create_api_key(engine, TENANT), create_api_key(engine, TENANT)
    by_id_id = parse_key_id(by_id)
    assert by_id_id is not None
    for given, key_id in ((by_key, parse_key_id(by_key)), (by_id_id, by_id_id)):
        assert cli.main(["api-key", "revoke", given]) == 0
        out = capsys.readouterr().out
        assert f"revoked API key {key_id}" in out and by_key not in out
        assert cli.main(["api-key", "revoke", given]) == 1, "a revoked key is not live any more"
        assert f"no live API key with id {key_id}" in capsys.readouterr().err
    for revoked in (by_key, by_id):
        response = httpx.get(f"{api_url}/jobs/{finished_job}", headers={"X-API-Key": revoked})
        assert response.status_code == 401 and "unknown or revoked API key" in _detail(response)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "     "}, "prompt"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"prompt": 12345}, "prompt"),
        ({"prompt": ["a", "sunset"]}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "a sunset\x00 over the sea"}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "a sunset over the sea", "num_frames": 0}, "num_frames"),
        ({"prompt": "a sunset over the sea", "num_frames": 100000}, "num_frames"),
        ({"prompt": "a sunset over the sea", "num_frames": "many"}, "num_frames"),
        ({"prompt": "a sunset over the sea", "fps": 0}, "fps"),
        ({"prompt": "a sunset over the sea", "fps": 240}, "fps"),
        ({"prompt": "a sunset over the sea", "num_candidates": 50}, "num_candidates"),
        ({"prompt": "a sunset over the sea", "height": 100}, "height"),
        ({"prompt": "a sunset over the sea", "tenant": "globex"}, "tenant"),
        (b'{"prompt": "a sunset over', "malformed JSON"),
        (b"[1, 2]", "body"),
        (b"not json at all", "malformed JSON"),
    ],
)
def test_bad_generation_input_is_a_422_with_the_reason(api: httpx.Client, content: Any, field: str) -> None:
    if isinstance(content, bytes):
        response = api.post("/generate-video", content=content, headers={"Content-Type": "application/json"})
    else:
        response = api.post("/generate-video", json=content)
    assert response.status_code == 422, response.text
    assert field in _detail(response)


def test_bad_job_ids_and_candidate_indexes_are_4xx_with_a_reason(
    api: httpx.Client, finished_job: uuid.UUID
) -> None:
    assert api.get("/jobs/not-a-uuid").status_code == 422
    unknown = api.get(f"/jobs/{uuid.uuid4()}")
    assert unknown.status_code == 404 and "not found" in _detail(unknown)
    selection = f"/jobs/{finished_job}/selection"
    for body in ({"candidate_index": -1}, {"candidate_index": "two"}, {"candidate_index": 2**40}, {}):
        response = api.post(selection, json=body)
        assert response.status_code == 422, body
        assert "candidate_index" in _detail(response)
    missing = api.post(selection, json={"candidate_index": 7})
    assert missing.status_code == 404
    assert "no candidate 7" in _detail(missing) and "0, 1, 2, 3, 4" in _detail(missing)


# ---- selections -----------------------------------------------------------------------------------


def test_a_selection_is_recorded_once_and_repeats_or_changes_are_409(
    api: httpx.Client, engine: Engine, finished_job: uuid.UUID
) -> None:
    path = f"/jobs/{finished_job}/selection"
    first = api.post(path, json={"candidate_index": 2})
    assert first.status_code == 201, first.text
    assert first.json()["candidate_index"] == 2

    repeat = api.post(path, json={"candidate_index": 2})
    assert repeat.status_code == 409
    assert "already selected" in _detail(repeat) and repeat.json()["selected_candidate"] == 2
    change = api.post(path, json={"candidate_index": 3})
    assert change.status_code == 409
    assert "already has a selection (candidate 2)" in _detail(change)

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT candidate_index, tenant FROM selections WHERE request_id = :id"),
            {"id": finished_job},
        ).all()
    assert [tuple(r) for r in rows] == [(2, TENANT)]
    assert api.get(f"/jobs/{finished_job}").json()["selected_candidate"] == 2


def test_unfinished_or_failed_jobs_cannot_be_selected(api: httpx.Client, engine: Engine) -> None:
    queued = insert_request(engine, TENANT)
    response = api.post(f"/jobs/{queued}/selection", json={"candidate_index": 0})
    assert response.status_code == 409 and "still queued" in _detail(response)

    failed = insert_request(engine, TENANT)
    finish_request(engine, failed, Outcome("failed", "champion", "base", {}, error="out of memory"))
    response = api.post(f"/jobs/{failed}/selection", json={"candidate_index": 0})
    assert response.status_code == 409 and "failed" in _detail(response)


def test_concurrent_conflicting_selections_record_exactly_one(
    api_url: str, keys: dict[str, str], engine: Engine
) -> None:
    request_id = insert_request(engine, TENANT)
    complete_request(engine, None, request_id, TENANT, candidates=8)

    def select(index: int) -> int:
        with httpx.Client(base_url=api_url, headers={"X-API-Key": keys[TENANT]}, timeout=30) as client:
            return client.post(f"/jobs/{request_id}/selection", json={"candidate_index": index}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(select, range(8)))
    assert sorted(codes) == [201] + [409] * 7
    with engine.connect() as conn:
        chosen = conn.execute(
            text("SELECT candidate_index FROM selections WHERE request_id = :id"), {"id": request_id}
        ).scalar_one()
    assert codes[chosen] == 201


# ---- operations -----------------------------------------------------------------------------------


def test_healthz_reports_database_and_kafka(api_url: str) -> None:
    response = httpx.get(api_url + "/healthz", timeout=30)
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["status"] == "ok"
    assert health["checks"]["database"]["ok"] and health["checks"]["kafka"]["ok"]


def test_a_database_that_is_down_gives_503_not_500(settings: Settings, keys: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    missing_db = create_engine_for(settings, database=f"adfame_missing_{uuid.uuid4().hex[:8]}")
    try:
        client = TestClient(create_app(settings, engine=missing_db))
        health = client.get("/healthz")
        assert health.status_code == 503
        assert not health.json()["checks"]["database"]["ok"]
        response = client.get(f"/jobs/{uuid.uuid4()}", headers={"X-API-Key": keys[TENANT]})
        assert response.status_code == 503 and "database" in _detail(response)
    finally:
        missing_db.dispose()


def test_metrics_count_requests_jobs_and_selections(api: httpx.Client) -> None:
    api.post("/generate-video", json={"prompt": "a blue bicycle in the rain"})
    metrics = httpx.get(str(api.base_url) + "/metrics").text
    assert f'adfame_api_jobs_submitted_total{{tenant="{TENANT}"}}' in metrics
    assert 'route="/generate-video",status="202"' in metrics
    assert 'adfame_api_request_duration_seconds_count{method="POST",route="/generate-video"}' in metrics
    assert "adfame_api_selections_total" in metrics
    assert "adfame_api_retrain_milestones_created_total" in metrics
