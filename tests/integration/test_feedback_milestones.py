"""Every 200th selection: exactly one milestone row and one DAG run, under concurrency (an Airflow outage
across a milestone is a fault test: tests/reliability/).

Each test counts selections in a fresh database (other tests' selections must not move the count)
and points the trigger at ``feedback_trigger_probe``, a real DAG that records the conf it got.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from api_support import finished_jobs, served
from sqlalchemy import Engine, Row, text

from adfame.airflow_client import AirflowClient
from adfame.db import create_engine_for, upgrade
from adfame.settings import Settings
from adfame.waiting import wait_for
from inference.api import ApiOptions, create_app
from inference.auth import create_api_key
from inference.feedback import record_selection

pytestmark = pytest.mark.integration

PROBE_DAG = "feedback_trigger_probe"
STATS_PREFIX = "feedback_probe."


@pytest.fixture(scope="module")
def airflow(settings: Settings) -> Iterator[AirflowClient]:
    with AirflowClient(settings) as client:
        client.wait_for_dag(PROBE_DAG, timeout_s=180)
        client.set_paused(PROBE_DAG, False)
        yield client
        client.set_paused(PROBE_DAG, True)


@pytest.fixture(scope="module")
def app_db(settings: Settings) -> Iterator[Engine]:
    """The stack's app database, where the probe DAG records what it received (schema applied)."""
    engine = create_engine_for(settings)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_probe(airflow: AirflowClient, app_db: Engine) -> None:
    """Forget earlier probe runs and records: run ids repeat per milestone, in every fresh database."""
    for run in airflow.list_dag_runs(PROBE_DAG):
        if run["state"] in ("queued", "running"):  # a run cut short by an earlier test cannot be deleted
            airflow.set_dag_run_state(PROBE_DAG, run["dag_run_id"], "failed")
        response = airflow.request("DELETE", f"/api/v2/dags/{PROBE_DAG}/dagRuns/{run['dag_run_id']}")
        assert response.status_code in (204, 404), response.text
    with app_db.begin() as conn:
        conn.execute(
            text("DELETE FROM dashboard_stats WHERE key LIKE :prefix"), {"prefix": STATS_PREFIX + "%"}
        )


def _milestones(engine: Engine) -> list[Row[Any]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT milestone, selection_count, dag_id, dag_run_id, triggered_at, attempts,"
                    " last_error FROM retrain_milestones ORDER BY milestone"
                )
            )
        )


def _all_triggered(engine: Engine) -> list[Row[Any]] | None:
    rows = _milestones(engine)
    return rows if rows and all(m.triggered_at for m in rows) else None


def _stamped(engine: Engine) -> dict[int, tuple[int, bool]]:
    """Per milestone: how many selections carry it, and whether all follow the previous milestone's by seq."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT milestone, count(*), min(seq), max(seq) FROM selections GROUP BY 1 ORDER BY 1")
        ).all()
    return {m.milestone: (m.count, i == 0 or m.min > rows[i - 1].max) for i, m in enumerate(rows)}


def test_concurrent_selections_are_stamped_200_per_milestone_in_seq_order(
    new_database: Callable[..., Engine],
) -> None:
    """The stamp is taken under the counting lock: milestone N holds the selections 200(N-1)+1 .. 200N."""
    engine = new_database(migrated=True)
    tenant = "stamps"
    jobs = finished_jobs(engine, tenant, 240)

    def select_all(chunk: list[uuid.UUID]) -> list[int | None]:
        return [record_selection(engine, job, 0, tenant).milestone for job in chunk]

    with ThreadPoolExecutor(8) as pool:
        completed = [m for chunk in pool.map(select_all, [jobs[i::8] for i in range(8)]) for m in chunk]
    assert sorted(m for m in completed if m is not None) == [1]
    assert [(m.milestone, m.selection_count) for m in _milestones(engine)] == [(1, 200)]
    assert _stamped(engine) == {1: (200, True), 2: (40, True)}


def _runs(airflow: AirflowClient) -> list[tuple[str, dict[str, Any]]]:
    return sorted((run["dag_run_id"], run["conf"]) for run in airflow.list_dag_runs(PROBE_DAG))


def test_400_concurrent_selections_give_two_milestones_and_two_dag_runs(
    settings: Settings,
    airflow: AirflowClient,
    app_db: Engine,
    clean_probe: None,
    new_database: Callable[..., Engine],
) -> None:
    engine = new_database(migrated=True)
    tenant = "bulk"
    key = create_api_key(engine, tenant)
    jobs = finished_jobs(engine, tenant, 400)
    # One tenant's 400 picks at once: the burst allowance holds them all (limits: tests/security).
    options = ApiOptions(retrain_dag_id=PROBE_DAG, milestone_retry_s=2.0, rate_limit_burst=400)
    with served(create_app(settings, options=options, engine=engine)) as api_url:

        def select_all(chunk: list[uuid.UUID]) -> list[int]:
            with httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=60) as client:
                return [
                    client.post(f"/jobs/{job}/selection", json={"candidate_index": 0}).status_code
                    for job in chunk
                ]

        with ThreadPoolExecutor(8) as pool:
            codes = [code for chunk in pool.map(select_all, [jobs[i::8] for i in range(8)]) for code in chunk]
        assert codes == [201] * 400

        assert [(m.milestone, m.selection_count) for m in _milestones(engine)] == [(1, 200), (2, 400)]
        assert _stamped(engine) == {1: (200, True), 2: (200, True)}
        rows = wait_for(
            lambda: _all_triggered(engine), what="both milestones triggered", timeout_s=60, interval_s=0.2
        )
        metrics = httpx.get(api_url + "/metrics").text
    assert "adfame_api_retrain_milestones_created_total 2.0" in metrics
    assert "adfame_api_retrain_milestones_triggered_total 2.0" in metrics
    assert "adfame_api_selections_total 400.0" in metrics

    expected = {
        "retrain_milestone_00001": {"milestone": 1, "selection_count": 200},
        "retrain_milestone_00002": {"milestone": 2, "selection_count": 400},
    }
    assert [(m.dag_id, m.dag_run_id, m.attempts, m.last_error) for m in rows] == [
        (PROBE_DAG, run_id, 1, None) for run_id in expected
    ]
    assert _runs(airflow) == sorted(expected.items())

    # The probe DAG ran and recorded exactly the conf each milestone sent.
    for run_id in expected:
        run = airflow.wait_for_dag_run(PROBE_DAG, run_id, timeout_s=180)
        assert run["state"] == "success", airflow.task_instances(PROBE_DAG, run_id)
    with app_db.connect() as conn:
        recorded = dict(
            conn.execute(
                text("SELECT key, value FROM dashboard_stats WHERE key LIKE :prefix"),
                {"prefix": STATS_PREFIX + "%"},
            ).all()
        )
    assert recorded == {STATS_PREFIX + run_id: conf for run_id, conf in expected.items()}
