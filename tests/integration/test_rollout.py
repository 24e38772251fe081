"""The canary's actions on the real stack: MLflow aliases, deployments rows, their events and the alert.

Each test registers its own model (``registry_lora``: real LoRA versions in MLflow) and works in this
module's own database, so neither the registry's ``adfame-wan-lora`` nor the stack's app database is
touched. The last test runs a real worker and measures how long it takes to follow the actions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine, text

from adfame.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS, PROMPTS_TOPIC, QUALITY_TEMPORAL_CONSISTENCY
from adfame.messaging import create_consumer, create_producer
from adfame.repositories.deployments import deployment_events
from adfame.repositories.monitoring import MetricRow, alerts_since, record_metrics
from adfame.repositories.requests import Outcome, claim_request, finish_request, record_request
from adfame.schemas import PromptRequest
from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore
from devkit.consumer_groups import start_group_at_the_end
from inference.jobs import submit, wait_for_job
from inference.model import ModelServer
from inference.worker import Worker
from monitoring.canary_judge import judge_window
from monitoring.rollout import (
    AlreadyChampion,
    MissingReason,
    NoChallenger,
    NoLiveCanary,
    RegistryFailed,
    WeightOutOfRange,
    promote,
    registry_aliases,
    rollback,
    set_weight,
    start_canary,
)
from operators.canary_step import DAG_ACTOR_PREFIX, START_TASK, roll_back_unjudged

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")


def _ours(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"registered_model": name, "canary_window_s": 60.0})


def _rows(engine: Engine, name: str) -> list[tuple[str, str, int, str]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "select model_version, alias, traffic_weight, state from deployments"
                    " where model_name = :name order by id"
                ),
                {"name": name},
            )
        ]


def _events(engine: Engine, name: str) -> list[tuple[str, str, int, str, str]]:
    return [(e.model_version, e.alias, e.weight, e.state, e.actor) for e in deployment_events(engine, name)]


class RemovalFails:
    """The real client, except that removing an alias fails: MLflow going away in the middle of a step."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        raise MlflowException("API request to http://127.0.0.1:25000 failed: Connection refused")


def test_a_canary_is_started_stepped_and_promoted(settings: Settings, engine: Engine, registry_lora) -> None:
    client, name = registry_lora.client, registry_lora.name
    ours = _ours(settings, name)
    old, new = registry_lora.add_version(), registry_lora.add_version()
    client.set_registered_model_alias(name, CHAMPION_ALIAS, old)
    with pytest.raises(NoChallenger, match=r"no version of .* carries alias challenger"):
        start_canary(ours, engine, client)
    with pytest.raises(AlreadyChampion):
        start_canary(ours, engine, client, version=old)
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, new)

    state = start_canary(ours, engine, client, actor="test")
    assert (state.champion, state.challenger, state.weight, state.state) == (old, new, 5, "canary")
    assert start_canary(ours, engine, client, actor="dag") == state, (
        "starting the live canary again changes nothing"
    )
    with pytest.raises(WeightOutOfRange, match=r"0\.\.100, got 101"):
        set_weight(ours, engine, 101, "too much")
    assert set_weight(ours, engine, 50, "window 1 passed", actor="test").weight == 50

    with pytest.raises(RegistryFailed, match="alias champion is back on version"):
        promote(ours, engine, RemovalFails(client), "all windows passed", actor="test")
    assert registry_aliases(client, name) == {CHAMPION_ALIAS: old, CHALLENGER_ALIAS: new}
    assert _rows(engine, name) == [(old, "champion", 50, "promoted"), (new, "challenger", 50, "canary")]

    state = promote(ours, engine, client, "all windows passed", actor="test")
    assert (state.champion, state.challenger, state.weight, state.state) == (new, None, 0, "promoted")
    assert registry_aliases(client, name) == {CHAMPION_ALIAS: new}
    assert _rows(engine, name) == [(old, "champion", 0, "retired"), (new, "champion", 100, "promoted")]
    assert _events(engine, name) == [
        (old, "champion", 95, "promoted", "test"),
        (new, "challenger", 5, "canary", "test"),
        (new, "challenger", 50, "canary", "test"),
        (old, "champion", 50, "promoted", "test"),
        (old, "champion", 0, "retired", "test"),
        (new, "champion", 100, "promoted", "test"),
    ]
    assert client.get_model_version(name, old).version == old, "the old champion stays registered"
    with pytest.raises(NoLiveCanary, match=f"the last deployment, version {new}, is promoted"):
        rollback(ours, engine, client, "too late")

    # The same through the command line, on this module's database and model.
    env = {**os.environ, "ADFAME_APP_DB": engine.url.database, "ADFAME_REGISTERED_MODEL": name}
    status = subprocess.run(
        [ADFAME, "canary", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    assert f"champion         {new}\nchallenger       -\ncanary weight    0 %" in status.stdout
    assert f"version {new}: promoted" in status.stdout and "all windows passed" in status.stdout
    refused = subprocess.run(
        [ADFAME, "canary", "rollback", "--reason", "too late"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"adfame canary rollback: no live canary of {name} (the last deployment, version {new}, is promoted)"
    )


class FailedTask:
    """What ``roll_back_unjudged`` reads of Airflow's task instance: its id and ``start_canary``'s XCom."""

    def __init__(self, task_id: str, started: dict[str, str]) -> None:
        self.task_id, self.started = task_id, started

    def xcom_pull(self, task_ids: str) -> dict[str, str] | None:
        return self.started if task_ids == START_TASK else None


def test_a_run_that_fails_without_a_verdict_rolls_its_canary_back(
    settings: Settings, engine: Engine, registry_lora, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = registry_lora.client, registry_lora.name
    old, new = registry_lora.add_version(), registry_lora.add_version()
    client.set_registered_model_alias(name, CHAMPION_ALIAS, old)
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, new)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    start_canary(_ours(settings, name), engine, client, actor=DAG_ACTOR_PREFIX + run_id)
    # The callback opens its own database connection from the settings, as a task does.
    monkeypatch.setenv("ADFAME_APP_DB", engine.url.database)
    get_settings.cache_clear()
    params = {"steps": [5, 25, 50, 100], "window_s": 60, "min_requests": 5, "max_windows": 3}
    context = {
        "ti": FailedTask("step_2", {"name": name, "version": new}),
        "run_id": run_id,
        "params": params | {"max_latency_ratio": 2.0},
        "exception": AttributeError("'Settings' object has no attribute 'x'"),
    }
    try:
        roll_back_unjudged(context)
        assert _rows(engine, name)[-1] == (new, "challenger", 0, "rolled_back")
        assert registry_aliases(client, name) == {CHAMPION_ALIAS: old}
        with engine.connect() as conn:
            reason = conn.execute(
                text("select reason from deployments where model_name = :n and state = 'rolled_back'"),
                {"n": name},
            ).scalar_one()
        assert reason.startswith(
            f"canary_rollout run {run_id}: step_2 failed before a verdict (AttributeError"
        )
        events = len(_events(engine, name))
        roll_back_unjudged(context)  # a canary no longer live (here: rolled back already) is left alone
        assert len(_events(engine, name)) == events
    finally:
        get_settings.cache_clear()


def _serve(engine: Engine, route: str, label: str, total_s: float, failed: bool = False) -> None:
    """One request through the repository's real path: recorded, claimed, finished."""
    request = PromptRequest(tenant="canary-judge", prompt="a sneaker on a pedestal")
    record_request(engine, request)
    claim_request(engine, request)
    if failed:
        outcome = Outcome("failed", route, label, {}, error="RuntimeError: the LoRA could not be loaded")
    else:
        outcome = Outcome("succeeded", route, label, {"total_s": total_s})
    finish_request(engine, request.request_id, outcome)


def test_a_breaching_canary_is_judged_failed_and_rolled_back(
    settings: Settings, engine: Engine, registry_lora
) -> None:
    client, name = registry_lora.client, registry_lora.name
    ours = _ours(settings, name).model_copy(update={"canary_min_requests": 10})
    champion, canary = registry_lora.add_version(), registry_lora.add_version()
    client.set_registered_model_alias(name, CHAMPION_ALIAS, champion)
    start_canary(ours, engine, client, version=canary, weight=25, actor="test")
    assert registry_aliases(client, name)[CHALLENGER_ALIAS] == canary

    start = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(12):
        _serve(engine, "champion", f"{name}/{champion}", 1.0 + i / 100)
        _serve(engine, "challenger", f"{name}/{canary}", 2.5 + i / 100, failed=i < 3)
    spread = [
        i / 1000 for i in range(-6, 7) if i
    ]  # 12 sampled requests a route (mean exact), the judge's minimum is 10
    record_metrics(
        engine,
        [MetricRow(QUALITY_TEMPORAL_CONSISTENCY, 0.9 + d, model_version=f"{name}/{champion}") for d in spread]
        + [
            MetricRow(QUALITY_TEMPORAL_CONSISTENCY, 0.5 + d, model_version=f"{name}/{canary}") for d in spread
        ],
    )
    verdict = judge_window(ours, engine, start, datetime.now(UTC) + timedelta(seconds=1))
    assert (verdict.outcome, verdict.challenger.requests, verdict.challenger.failed) == ("failed", 12, 3)
    assert (verdict.champion.requests, verdict.champion.error_rate) == (12, 0.0)
    assert verdict.challenger.p95_latency_s == pytest.approx(
        2.606
    )  # 9 succeeded: 2.53 .. 2.61 and verdict.champion.p95_latency_s < 1.12
    assert verdict.reasons[0] == "error rate 25.0% above the limit 5.0% (3 of 12 failed; champion 0.0%)"
    assert verdict.reasons[1].startswith("p95 latency 2.4x the champion's (limit 1.5x)")
    assert verdict.reasons[2].startswith("quality.temporal_consistency 0.5 is 44% worse")

    since = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(MissingReason):
        rollback(ours, engine, client, " ")
    state = rollback(ours, engine, client, "; ".join(verdict.reasons), actor="test")
    assert (state.champion, state.challenger, state.weight, state.state) == (champion, None, 0, "rolled_back")
    assert state.reason.startswith("error rate 25.0%")
    assert registry_aliases(client, name) == {CHAMPION_ALIAS: champion}, "champion untouched, challenger gone"
    assert _rows(engine, name) == [
        (champion, "champion", 100, "promoted"),
        (canary, "challenger", 0, "rolled_back"),
    ]
    assert _events(engine, name)[-2:] == [
        (canary, "challenger", 0, "rolled_back", "test"),
        (champion, "champion", 100, "promoted", "test"),
    ]
    (alert,) = [
        a for a in alerts_since(engine, since, kind="canary_rollback") if a.subject == f"{name}/{canary}"
    ]
    assert alert.message.startswith(f"canary of {name} version {canary} rolled back at 25 %: error rate")
    assert alert.details == {"model": name, "version": canary, "weight": 25, "actor": "test"}
    with pytest.raises(NoLiveCanary, match="is rolled_back"):
        rollback(ours, engine, client, "again")


# ---- a running worker follows the actions ---------------------------------------------------------


def _db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.execute(text("select now()")).scalar_one()


class OwnMessages:
    """The worker's real consumer, passing on only this test's messages: adfame.prompts is shared with
    whoever else uses the test stack meanwhile, and their requests are not this measurement's."""

    def __init__(self, consumer: Any) -> None:
        self.consumer, self.ids = consumer, set[str]()

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return {
            partition: [r for r in records if r.key in self.ids] for partition, records in batches.items()
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)


class Traffic:
    """Small requests sent one at a time; each reports what served it and when it started."""

    def __init__(self, engine: Engine, producer: Any, consumer: OwnMessages) -> None:
        self.engine, self.producer, self.consumer = engine, producer, consumer

    def one(self) -> tuple[str, str, datetime]:
        request = PromptRequest(
            tenant="follow",
            prompt="a sneaker rotates on a pedestal",
            num_candidates=1,
            num_frames=5,
            height=32,
            width=32,
        )
        self.consumer.ids.add(str(request.request_id))
        submit(request, engine=self.engine, producer=self.producer)
        job = wait_for_job(self.engine, request.request_id, timeout_s=300)
        assert job.status == "succeeded", job.error
        with self.engine.connect() as conn:
            started = conn.execute(
                text("select started_at from generation_requests where request_id = :id"),
                {"id": str(job.request_id)},
            ).scalar_one()
        return job.route, job.model_version, started

    def follow(self, change: Callable[[], object], expected: tuple[str, str]) -> tuple[float, int]:
        """Make the change, then send requests until one is served as ``expected``: the seconds from the
        change to that request's start, and how many requests started after the change were served the
        old way."""
        change()
        changed_at, stale = _db_now(self.engine), 0
        deadline = time.monotonic() + 180
        while (served := self.one())[:2] != expected:
            stale += served[2] > changed_at
            assert time.monotonic() < deadline, f"the worker never followed: still served by {served[:2]}"
        return (served[2] - changed_at).total_seconds(), stale


@pytest.fixture()
def running_worker(settings: Settings, engine: Engine, registry_lora) -> Iterator[tuple[Settings, Traffic]]:
    """A real worker (warm tiny-wan, this test's registered model, the module's database, real Kafka,
    MLflow and S3) in a thread of its own, re-reading the registry every 5 s; and traffic for it."""
    ours = _ours(settings, registry_lora.name).model_copy(
        update={"alias_refresh_s": 5.0, "inference_steps": 2}
    )
    group = f"test-follow-{uuid.uuid4().hex[:8]}"
    start_group_at_the_end(settings, group)
    consumer = OwnMessages(create_consumer(group, [PROMPTS_TOPIC], settings))
    producer = create_producer(settings)
    server = ModelServer(settings.model_source, settings=settings)
    worker = Worker(
        ours,
        server,
        engine=engine,
        store=ObjectStore(settings),
        producer=producer,
        consumer=consumer,  # type: ignore[arg-type]
        registry=registry_lora.client,
    )
    thread = threading.Thread(target=worker.run, name="follow-worker", daemon=True)
    thread.start()
    try:
        yield ours, Traffic(engine, producer, consumer)
    finally:
        worker.stop.set()
        thread.join(timeout=120)
        producer.close()


def test_a_running_worker_follows_alias_moves_and_weight_changes(
    engine: Engine, registry_lora, running_worker: tuple[Settings, Traffic]
) -> None:
    ours, traffic = running_worker
    client, name = registry_lora.client, registry_lora.name
    old, new = registry_lora.add_version(), registry_lora.add_version()
    client.set_registered_model_alias(name, CHAMPION_ALIAS, old)
    label = {version: f"{name}/{version}" for version in (old, new)}
    assert traffic.one()[:2] == ("champion", label[old])  # warm: the champion's LoRA is loaded
    measured = {
        "a canary started by the rollout (alias challenger set, 100 %)": traffic.follow(
            lambda: start_canary(ours, engine, client, version=new, weight=100, actor="test"),
            ("challenger", label[new]),
        ),
        "a weight change (100 -> 0 %)": traffic.follow(
            lambda: set_weight(ours, engine, 0, "test", actor="test"), ("champion", label[old])
        ),
        "a promotion (alias champion moved by the rollout)": traffic.follow(
            lambda: promote(ours, engine, client, "test", actor="test"), ("champion", label[new])
        ),
    }
    by_hand = traffic.follow(
        lambda: client.set_registered_model_alias(name, CHAMPION_ALIAS, old), ("champion", label[old])
    )
    for what, (seconds, stale) in measured.items():
        print(f"worker followed {what} in {seconds:.2f} s; requests served the old way after it: {stale}")
        assert stale == 0, f"{what}: a rollout action applies from the next request"
    print(
        f"worker followed alias champion moved by hand in MLflow in {by_hand[0]:.2f} s"
        f" (alias_refresh_s 5); requests served the old way after it: {by_hand[1]}"
    )
