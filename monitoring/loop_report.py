"""The closing report of one turn of the loop (``adfame report``): what ran, what it made, where to look.

Why it exists: ``make demo`` runs every stage (curation, serving, picks, retrain, canary); at the end a
person wants one screen that says which DAG runs happened and how they ended, where the latest canary
left the model, whether the new version learned what the (simulated) marketers like, and which URLs to
open. The win rate is the one number a production system cannot compute (it needs the marketer's taste),
so it is asked for only when a taste is given: the demo's simulated marketer has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from adfame.airflow_client import AirflowClient
from adfame.contracts import CANARY_DAG_ID, CHALLENGER_ALIAS, CHAMPION_ALIAS, MONITOR_DAG_ID, RETRAIN_DAG_ID
from adfame.repositories.deployments import DeploymentEvent, deployment_events
from adfame.settings import Settings
from inference.model import version_ref
from inference.tastes import Taste
from monitoring.canary_watch import describe
from monitoring.rollout import CanaryState, canary_status
from training.registry import LineageTag
from training.taste_win_rate import TasteVerdict, taste_win_rate

REPORTED_DAGS = ("platform_healthcheck", "nightly_etl", RETRAIN_DAG_ID, CANARY_DAG_ID, MONITOR_DAG_ID)


@dataclass(frozen=True)
class LatestCanary:
    """The version of the model's most recent canary and the champion it was compared with (None: base)."""

    version: str
    champion_before: str | None


@dataclass(frozen=True)
class LoopReport:
    runs: dict[str, dict[str, Any] | None]  # DAG id -> its newest run (None: never ran)
    rollout: CanaryState
    canary: LatestCanary | None
    verdict: TasteVerdict | None
    urls: dict[str, str]


def newest_runs(
    airflow: AirflowClient, dag_ids: Sequence[str] = REPORTED_DAGS
) -> dict[str, dict[str, Any] | None]:
    """Each DAG's most recently queued run (None when it has none)."""
    newest = {}
    for dag_id in dag_ids:
        runs = airflow.list_dag_runs(dag_id) if airflow.get_dag(dag_id) else []
        newest[dag_id] = max(runs, key=lambda run: run.get("queued_at") or "", default=None)
    return newest


def latest_canary(events: Sequence[DeploymentEvent]) -> LatestCanary | None:
    """From a model's deployment history: the version of the newest canary, and the version that was
    champion when it started (the champion rows are written before each canary's first weight)."""
    starts = [i for i, e in enumerate(events) if e.alias == CHALLENGER_ALIAS and e.state == "canary"]
    if not starts:
        return None
    version = events[starts[-1]].model_version
    first = next(i for i in starts if events[i].model_version == version)
    before = [e for e in events[:first] if e.alias == CHAMPION_ALIAS and e.state == "promoted"]
    return LatestCanary(version, before[-1].model_version if before else None)


def judge_by_taste(settings: Settings, client: Any, taste: Taste, canary: LatestCanary) -> TasteVerdict:
    """The canary's version against the champion it replaced, on its export's held-out cases."""
    name = settings.registered_model
    challenger = version_ref(client, name, canary.version)
    champion = None if canary.champion_before is None else version_ref(client, name, canary.champion_before)
    export_uri = client.get_model_version(name, canary.version).tags[LineageTag.EXPORT_URI]
    return taste_win_rate(taste, challenger, champion, export_uri, settings)


def loop_report(settings: Settings, engine: Engine, client: Any, taste: Taste | None = None) -> LoopReport:
    with AirflowClient(settings) as airflow:
        runs = newest_runs(airflow)
    canary = latest_canary(deployment_events(engine, settings.registered_model))
    verdict = judge_by_taste(settings, client, taste, canary) if taste is not None and canary else None
    urls = {
        "Airflow": settings.airflow_url,
        "MLflow models": f"{settings.mlflow_url}/#/models/{settings.registered_model}",
        "selection page": f"{settings.api_url}/",
        "dashboard": settings.dashboard_url,
    }
    return LoopReport(runs, canary_status(settings, engine, client), canary, verdict, urls)


def format_loop_report(report: LoopReport) -> str:
    lines = ["What ran (newest run of each DAG):"]
    for dag_id, run in report.runs.items():
        state = f"{run['dag_run_id']}  {run['state']}" if run else "no run yet"
        lines.append(f"  {dag_id:<22} {state}")
    lines += ["", f"Models: {describe(report.rollout)}"]
    if report.canary is None:
        lines.append("  no canary has run yet")
    if report.verdict is not None:
        v = report.verdict
        lines.append(
            f"  win rate of {v.challenger} against {v.champion} under the taste {v.taste}:"
            f" {v.win_rate:.2f} over {v.cases} held-out cases (0.5: no better than before)"
        )
    lines += ["", "Open:"] + [f"  {name:<16} {url}" for name, url in report.urls.items()]
    return "\n".join(lines)
