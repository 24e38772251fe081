"""The pure rules of feedback: which selection completes a milestone, run ids, what counts as a 409."""

from __future__ import annotations

import pytest

from adfame.airflow_client import AirflowError
from adfame.contracts import SELECTIONS_PER_RETRAIN
from inference.feedback import is_conflict, milestone_for, milestone_run_id


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, None), (1, None), (199, None), (200, 1), (201, None), (399, None), (400, 2), (2000, 10)],
)
def test_every_200th_selection_completes_a_milestone(count: int, expected: int | None) -> None:
    assert SELECTIONS_PER_RETRAIN == 200
    assert milestone_for(count) == expected


def test_exactly_one_milestone_per_block_of_selections() -> None:
    milestones = [m for n in range(1, 1001) if (m := milestone_for(n)) is not None]
    assert milestones == [1, 2, 3, 4, 5]
    assert milestone_for(6, per_retrain=3) == 2


def test_run_ids_are_fixed_per_milestone_and_sort_in_order() -> None:
    assert milestone_run_id(1) == "retrain_milestone_00001"
    assert milestone_run_id(42) == "retrain_milestone_00042"
    ids = [milestone_run_id(n) for n in (1, 2, 10, 100)]
    assert ids == sorted(ids)


def test_only_an_airflow_409_counts_as_already_triggered() -> None:
    assert is_conflict(AirflowError("POST /api/v2/dags/x/dagRuns -> 409: run exists", status=409))
    assert not is_conflict(AirflowError("POST /api/v2/dags/x/dagRuns -> 404: DAG not found", status=404))
    assert not is_conflict(AirflowError("Airflow at http://127.0.0.1:1 is not reachable"))
    assert not is_conflict(RuntimeError("409"))
    # The decision is the status Airflow answered with, never a number somewhere in the text.
    assert not is_conflict(AirflowError("-> 500: id 409", status=500))
