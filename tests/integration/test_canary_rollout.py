"""canary_rollout end to end on the real stack, with a worker serving live traffic.

One registered model of the test's own (so the stack's shared model, and other tests' workers, are not
touched): a champion version with a real LoRA, a good challenger (the same real files) and a bad one (its
files are missing, so each request it serves fails). Everything is real: MLflow, the MLflow webhook, the
Airflow scheduler, triggerer and task processes, a worker process in its own consumer group, PostgreSQL.

1. Setting alias challenger by hand (``MlflowClient.set_registered_model_alias``, what MLflow's UI calls)
   makes the MLflow server post its signed webhook to the API, which creates a ``canary_rollout`` run for
   that version. The DAG is paused meanwhile (the test stack keeps it paused: ADFAME_CANARY_AUTOSTART), so
   that run stays queued with the default windows of minutes; it is checked and deleted.
2. A run with short windows walks the good challenger through four steps while traffic flows and
   promotes it: alias champion and the deployments rows move.
3. A run on the bad challenger is rolled back within its first window: champion unchanged, alias
   challenger removed, the reason and a ``canary_rollback`` alert recorded.
The shares at each weight over 100+ requests are measured by ``python -m bench.canary``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from adfame import db
from adfame.airflow_client import AirflowClient
from adfame.contracts import CANARY_DAG_ID, CHALLENGER_ALIAS, CHAMPION_ALIAS
from adfame.mlflow_setup import configure_mlflow
from adfame.mlflow_webhook_setup import (
    ALIAS_CREATED_EVENT,
    WEBHOOK_CACHE_TTL_S,
    WEBHOOK_NAME,
    WEBHOOK_PATH,
    ensure_alias_webhook,
    webhook_url,
)
from adfame.repositories.deployments import deployment_events
from adfame.settings import Settings
from adfame.waiting import wait_for
from devkit.background_traffic import BackgroundTraffic
from devkit.consumer_groups import start_group_at_the_end
from inference.model import ModelVersionRef, init_default_model, local_lora

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")
TENANT = "canary-test"
SMALL = {"num_candidates": 1, "num_frames": 5, "height": 32, "width": 32}  # cheap requests, many per window
WINDOW_S = 10
# A generous latency limit: on a shared two-core machine a few challenger requests' p95 is noise; the bad
# challenger is caught by its error rate. The latency rule itself: tests/unit/monitoring/test_canary_judge.py.
# Steps from 25 %: at 5 % a window of seconds holds too few challenger requests to judge on two shared
# cores (about one request a second here); the 5 % step over 100+ requests is bench/canary.py's.
CONF = {
    "steps": [25, 50, 75, 100],
    "window_s": WINDOW_S,
    "min_requests": 2,
    "max_windows": 3,
    "max_latency_ratio": 10,
}


@pytest.fixture(scope="module", autouse=True)
def schema_and_model(settings: Settings) -> None:
    db.upgrade(db.engine())
    init_default_model(settings)


@pytest.fixture()
def airflow(settings: Settings) -> Iterator[AirflowClient]:
    """Airflow, with canary_rollout paused again afterwards (the test stack keeps it paused)."""
    with AirflowClient(settings) as client:
        client.wait_for_dag(CANARY_DAG_ID)
        client.set_paused(CANARY_DAG_ID, True)
        try:
            yield client
        finally:
            client.set_paused(CANARY_DAG_ID, True)


def start_worker(settings: Settings, tmp_path: Path, model: str) -> subprocess.Popen:
    group = f"test-canary-{uuid.uuid4().hex[:8]}"
    start_group_at_the_end(settings, group)
    env = {**os.environ, "ADFAME_REGISTERED_MODEL": model, "ADFAME_WORKER_GROUP": group}
    with (tmp_path / "worker.log").open("w") as log:
        return subprocess.Popen(
            [ADFAME, "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def served_by(engine: Engine, label: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "select count(*) from generation_requests where model_version = :label and tenant = :tenant"
            ),
            {"label": label, "tenant": TENANT},
        ).scalar_one()


def webhook_run(airflow: AirflowClient, settings: Settings, client: Any, name: str, version: str) -> dict:
    """Set alias challenger by hand; the run MLflow's webhook made the API create (DAG paused: queued)."""
    from api_support import served

    from inference.api import create_app

    app_settings = settings.model_copy(update={"registered_model": name})
    with served(create_app(app_settings, engine=db.engine())) as url:
        hook = client.create_webhook(
            f"adfame-test-{uuid.uuid4().hex[:8]}",
            f"{url}{WEBHOOK_PATH}",
            [ALIAS_CREATED_EVENT],
            secret=settings.mlflow_webhook_secret.get_secret_value(),
        )
        try:
            time.sleep(WEBHOOK_CACHE_TTL_S + 1)  # the MLflow server re-reads its webhooks this often
            client.set_registered_model_alias(name, CHALLENGER_ALIAS, version)

            def created() -> dict | None:
                runs = airflow.list_dag_runs(CANARY_DAG_ID)
                mine = [r for r in runs if (r.get("conf") or {}).get("model_name") == name]
                return mine[0] if mine else None

            return wait_for(created, what="a canary_rollout run from the MLflow webhook", timeout_s=60)
        finally:
            client.delete_webhook(hook.webhook_id)


def test_production_webhook_is_registered_once_for_the_api(settings: Settings) -> None:
    client = configure_mlflow(settings)
    ensure_alias_webhook(settings, client)  # what `adfame stack up` does; again: nothing new
    hooks = [hook for hook in client.list_webhooks() if hook.name == WEBHOOK_NAME]
    assert len(hooks) == 1
    assert hooks[0].url == webhook_url(settings) == f"{settings.api_url}{WEBHOOK_PATH}"
    assert [str(event) for event in hooks[0].events] == [ALIAS_CREATED_EVENT]


@pytest.mark.timeout(900)
def test_a_good_challenger_is_promoted_and_a_bad_one_rolled_back_within_a_window(
    settings: Settings, airflow: AirflowClient, registry_lora, tmp_path: Path
) -> None:
    engine = db.engine()
    client, name = registry_lora.client, registry_lora.name
    champion, good = registry_lora.add_version("lora"), registry_lora.add_version("lora")
    bad = registry_lora.add_version("deleted-lora")
    client.set_registered_model_alias(name, CHAMPION_ALIAS, champion)
    for version in (champion, good):  # pre-pulled, as a deployment would: a first download is no latency
        source = client.get_model_version(name, version).source
        local_lora(
            ModelVersionRef(name, version, source), settings.models_cache / "loras", settings.mlflow_url
        )

    hooked = webhook_run(airflow, settings, client, name, good)
    assert hooked["conf"] == {"model_name": name, "model_version": good, "source": "mlflow-webhook"}
    assert hooked["state"] == "queued" and hooked["dag_run_id"].startswith(f"mlflow_webhook_v{good}_")
    airflow.request("DELETE", f"/api/v2/dags/{CANARY_DAG_ID}/dagRuns/{hooked['dag_run_id']}")

    worker = start_worker(settings, tmp_path, name)
    try:
        with BackgroundTraffic(settings, engine, TENANT, rate_per_s=1.5, **SMALL) as traffic:
            wait_for(
                lambda: served_by(engine, f"{name}/{champion}") > 0, what="the worker serving", timeout_s=180
            )
            good_run = airflow.run_dag(
                CANARY_DAG_ID, {**CONF, "model_name": name, "model_version": good}, timeout_s=420
            )
            bad_run = airflow.run_dag(
                CANARY_DAG_ID, {**CONF, "model_name": name, "model_version": bad}, timeout_s=300
            )
        assert traffic.failures == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    states = {ti["task_id"]: ti["state"] for ti in good_run.task_instances}
    assert good_run.succeeded, (states, (tmp_path / "worker.log").read_text()[-3000:])
    shares = {
        step: airflow.request(
            "GET",
            f"/api/v2/dags/{CANARY_DAG_ID}/dagRuns/{good_run.run_id}/taskInstances/{step}/xcomEntries/return_value",
        ).json()["value"]
        for step in ("step_1", "step_2", "step_3", "step_4")
    }
    print(
        {
            step: (window["weight"], window["challenger_share"], window["challenger_requests"])
            for step, window in shares.items()
        }
    )
    assert [window["outcome"] for window in shares.values()] == ["passed"] * 4
    # At 100 % the challenger serves all but the requests still finishing from the 75 % step.
    assert shares["step_4"]["challenger_requests"] > shares["step_4"]["champion_requests"]
    aliases = client.get_registered_model(name).aliases
    assert aliases.get(CHAMPION_ALIAS) == good

    states = {ti["task_id"]: ti["state"] for ti in bad_run.task_instances}
    assert (
        bad_run.state == "failed" and states["step_1"] == "failed" and states["step_2"] == "upstream_failed"
    )
    aliases = client.get_registered_model(name).aliases
    assert aliases.get(CHAMPION_ALIAS) == good and CHALLENGER_ALIAS not in aliases
    events = [e for e in deployment_events(engine, name) if e.model_version == bad]
    assert [(e.state, e.weight) for e in events] == [("canary", 25), ("canary", 25), ("rolled_back", 0)]
    assert "step 1/4" in events[-1].reason and "error rate" in events[-1].reason
    assert "windows)" not in events[-1].reason  # judged in its first window, not after waiting for more
    with engine.connect() as conn:
        alerts = (
            conn.execute(
                text("select message from alerts where kind = 'canary_rollback' and subject = :subject"),
                {"subject": f"{name}/{bad}"},
            )
            .scalars()
            .all()
        )
    assert len(alerts) == 1 and "error rate" in alerts[0]
