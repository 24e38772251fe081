"""The generation service end to end on the real stack: CLI -> Kafka -> worker -> S3 + PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adfame import db
from adfame.contracts import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    GENERATIONS_TOPIC,
    PROMPTS_DLQ_TOPIC,
    PROMPTS_TOPIC,
    VIDEOS_BUCKET,
)
from adfame.messaging import create_consumer, create_producer, decode_json
from adfame.schemas import PromptRequest
from adfame.storage import ObjectStore
from adfame.waiting import WaitTimeout, wait_for
from devkit.consumer_groups import start_group_at_the_end
from devkit.mp4_reader import read_mp4_info
from inference.jobs import submit, wait_for_job
from inference.model import init_default_model
from inference.variations import candidate_seeds, expand

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")


@pytest.fixture(scope="module", autouse=True)
def model_and_schema(settings) -> None:
    db.upgrade(db.engine())
    init_default_model(settings)


@pytest.fixture(scope="module", autouse=True)
def no_backlog(settings) -> None:
    """Start the worker group at the end of adfame.prompts: what earlier tests queued through the API
    (schemathesis asks for videos as large as the schema allows) is not this module's work."""
    start_group_at_the_end(settings, settings.worker_group)


def start_worker(tmp_path: Path, **env: str) -> subprocess.Popen:
    log = open(tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log", "w")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [ADFAME, "worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )


@pytest.fixture()
def worker(tmp_path) -> Iterator[subprocess.Popen]:
    proc = start_worker(tmp_path)
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def events_for(request_ids: set[str], timeout_s: float = 30) -> list[dict]:
    """The completion events of the requests on adfame.generations (those found by the deadline)."""
    consumer = create_consumer(f"test-events-{uuid.uuid4().hex[:8]}", [GENERATIONS_TOPIC])
    found: list[dict] = []

    def read() -> set[str]:
        for records in consumer.poll(timeout_ms=500, max_records=500).values():
            found.extend(e for r in records if (e := decode_json(r.value))["request_id"] in request_ids)
        return {e["request_id"] for e in found}

    try:
        wait_for(read, what="the events", timeout_s=timeout_s, interval_s=0, done=request_ids.__eq__)
    except WaitTimeout:
        pass  # the caller's assertion says what is missing
    finally:
        consumer.close()
    return found


def test_generate_wait_yields_five_playable_videos(settings, worker, tmp_path) -> None:
    result = subprocess.run(
        [
            ADFAME,
            "generate",
            "a woman running in sneakers on a beach",
            "--tenant",
            "nike",
            "--wait",
            "--timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    request_id = result.stdout.split()[2]
    job = wait_for_job(db.engine(), request_id, timeout_s=5)
    assert job.status == "succeeded" and len(job.candidates) == 5
    assert job.timings.keys() >= {
        "queue_wait_s",
        "kafka_lag_s",
        "denoise_s",
        "decode_s",
        "encode_s",
        "upload_s",
        "store_s",
        "total_s",
    }
    t = job.timings
    assert t["total_s"] >= t["denoise_s"] + t["decode_s"] + t["store_s"]
    rid = uuid.UUID(request_id)
    assert [(c.variation_prompt, c.seed) for c in job.candidates] == list(
        zip(expand(job.prompt, 5, rid), candidate_seeds(rid, 5), strict=True)
    )
    store = ObjectStore(settings)
    for c in job.candidates:
        assert c.object_key == f"nike/{request_id}/{c.index}.mp4"
        path = tmp_path / f"{c.index}.mp4"
        store.get_file(VIDEOS_BUCKET, c.object_key, path)
        frames, fps, _, _ = read_mp4_info(path)
        assert (frames, fps) == (16, 8)
        assert c.object_key.split("/")[-1] in result.stdout or "X-Amz-Signature" in result.stdout
    event = events_for({request_id})
    assert event and event[0]["status"] == "succeeded" and len(event[0]["candidates"]) == 5


def test_malformed_messages_go_to_the_dead_letter_topic(worker) -> None:
    producer = create_producer()
    marker = uuid.uuid4().hex
    bad = {
        f"notjson-{marker}": b"this is not json",
        f"invalid-{marker}": PromptRequest(tenant="nike", prompt="ok prompt")
        .model_dump_json()
        .replace('"num_frames":16', '"num_frames":0')
        .encode(),
    }
    for key, value in bad.items():
        producer.send(PROMPTS_TOPIC, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = create_consumer(f"test-dlq-{marker[:8]}", [PROMPTS_DLQ_TOPIC])
    letters: dict[str, dict] = {}

    def read() -> int:
        for records in consumer.poll(timeout_ms=500).values():
            letters.update((r.key, decode_json(r.value)) for r in records if r.key in bad)
        return len(letters)

    try:
        wait_for(read, what="both dead letters", timeout_s=120, interval_s=0, done=lambda n: n == len(bad))
    finally:
        consumer.close()
    assert "not a JSON prompt message" in letters[f"notjson-{marker}"]["reason"]
    assert "num_frames" in letters[f"invalid-{marker}"]["reason"]
    assert letters[f"invalid-{marker}"]["payload"].startswith("{")


def test_registry_versions_serve_by_route_and_a_broken_one_fails_only_its_requests(
    settings, tmp_path, registry_lora
) -> None:
    """Champion: a real LoRA. Challenger at 100 % of the canary: a version whose files are gone."""
    engine = db.engine()
    store = ObjectStore(settings)
    client, name = registry_lora.client, registry_lora.name
    champion, broken = registry_lora.add_version("lora"), registry_lora.add_version("deleted-lora")
    client.set_registered_model_alias(name, CHAMPION_ALIAS, champion)
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, broken)
    proc = start_worker(tmp_path, ADFAME_REGISTERED_MODEL=name)
    producer = create_producer()
    try:
        served = PromptRequest(tenant="puma", prompt="a sneaker rotates on a pedestal")
        submit(served, engine=engine, producer=producer)
        job = wait_for_job(engine, served.request_id, timeout_s=240)
        assert (job.status, job.route) == ("succeeded", "champion")
        assert job.model_version == f"{name}/{champion}"

        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into deployments (model_name, model_version, alias, traffic_weight, state) "
                    "values (:name, :version, :alias, 100, 'canary')"
                ),
                {"name": name, "version": broken, "alias": CHALLENGER_ALIAS},
            )
        failing = PromptRequest(tenant="puma", prompt="a sneaker on a wet street at night")
        submit(failing, engine=engine, producer=producer)
        job = wait_for_job(engine, failing.request_id, timeout_s=120)
        assert (job.status, job.route, job.model_version) == ("failed", "challenger", f"{name}/{broken}")
        assert "could not download the LoRA" in job.error and "deleted-lora" in job.error
        assert not job.candidates
        assert not list(store.list(VIDEOS_BUCKET, f"puma/{failing.request_id}/"))
        assert proc.poll() is None, "the worker must outlive a request that fails"
    finally:
        producer.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        with engine.begin() as conn:
            conn.execute(text("delete from deployments where model_name = :name"), {"name": name})
    events = {e["request_id"]: e for e in events_for({str(served.request_id), str(failing.request_id)})}
    assert (events[str(served.request_id)]["status"], events[str(served.request_id)]["route"]) == (
        "succeeded",
        "champion",
    )
    assert (events[str(failing.request_id)]["status"], events[str(failing.request_id)]["route"]) == (
        "failed",
        "challenger",
    )
