"""The closing report's reading of the deployment history, and the watch's one-line state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from adfame.repositories.deployments import DeploymentEvent
from monitoring.canary_watch import describe, open_canary_run
from monitoring.loop_report import LatestCanary, latest_canary
from monitoring.rollout import CanaryState

_ids = itertools.count(1)


def event(version: str, alias: str, weight: int, state: str) -> DeploymentEvent:
    number = next(_ids)
    at = datetime(2026, 11, 29, 3, 0, number, tzinfo=UTC)
    return DeploymentEvent(number, number, "m", version, alias, weight, state, None, "dag:x", at)


def test_no_canary_yet() -> None:
    assert latest_canary([]) is None


def test_a_first_canary_replaced_the_base_model_and_a_second_one_the_first() -> None:
    first = [
        event("1", "challenger", 5, "canary"),
        event("1", "challenger", 25, "canary"),
        event("1", "champion", 100, "promoted"),
    ]
    assert latest_canary(first) == LatestCanary("1", None)
    second = [
        event("1", "champion", 95, "promoted"),  # the champion row, written as the canary starts
        event("2", "challenger", 5, "canary"),
        event("2", "challenger", 50, "canary"),
        event("2", "challenger", 0, "rolled_back"),
    ]
    assert latest_canary(first + second) == LatestCanary("2", "1")


class RunsOf:
    """The one read open_canary_run makes of Airflow, answered from a list."""

    def __init__(self, runs: list[dict[str, str]]) -> None:
        self.runs = runs

    def list_dag_runs(self, dag_id: str) -> list[dict[str, str]]:
        assert dag_id == "canary_rollout"
        return self.runs


def test_the_running_run_is_watched_before_any_queued_one() -> None:
    runs = [
        {"dag_run_id": "done", "state": "success", "queued_at": "2026-11-29T01:00:00Z"},
        {"dag_run_id": "next", "state": "queued", "queued_at": "2026-11-29T03:00:00Z"},
        {"dag_run_id": "now", "state": "running", "queued_at": "2026-11-29T03:01:00Z"},
    ]
    assert open_canary_run(RunsOf(runs))["dag_run_id"] == "now"  # type: ignore[arg-type,index]
    assert open_canary_run(RunsOf(runs[:1])) is None  # type: ignore[arg-type]


def test_describe_says_who_serves_what() -> None:
    live = CanaryState("m", "1", "2", 25, "canary", "step 2/4", None, version="2")
    assert describe(live) == "champion 1; challenger version 2 at 25 %"
    ended = CanaryState("m", None, None, 0, "rolled_back", "error rate 100%", None, version="2")
    assert describe(ended) == "champion the base model; last deployment 2 rolled_back (error rate 100%)"
