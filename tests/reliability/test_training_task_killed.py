"""Fault (g): the training task of retrain_on_feedback SIGKILLed mid-run is retried, and the milestone
still ends as exactly one registered version, one finished training run with one loss point per step,
one evaluation row per role and metric, and its checkpoints at the final step.

The run is the suite's one end-to-end retrain (``killed_training_retrain``, tests/conftest.py; the kill
and the ledger are ``devkit.fault_training``); its ledger is read from MLflow, PostgreSQL and the
bucket after the run.
"""

from __future__ import annotations

import pytest

from devkit.fault_report import FaultReport
from devkit.fault_training import UNIT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)  # the fixture's DAG run when this test is the first to ask for it
def test_a_training_task_killed_mid_run_is_retried_and_nothing_is_lost_or_done_twice(
    killed_training_retrain: FaultReport,
) -> None:
    report = killed_training_retrain
    details = report.details
    assert report.unit == UNIT and (report.accepted, report.in_flight) == (1, 1)
    assert report.clean, report.as_row()
    kill, tries = details["kill"], details["tries"]
    steps = details["conf"]["train"]["steps"]
    # Killed while it trained: a checkpoint past step 0 and short of the last step was the latest.
    assert 0 < kill["at_step"] < steps
    killed = next(t for t in tries if t["try_number"] == kill["try_number"])
    assert killed["state"] == "failed" and killed["pid"] == kill["pid"]
    assert tries[-1]["state"] == "success" and tries[-1]["try_number"] > kill["try_number"]
    assert details["run_state"] == "success"
    assert len(details["versions"]) == 1 and list(details["training_runs"].values()) == ["FINISHED"]
    assert details["loss_points"] == steps and details["checkpoint_step"] == steps
    assert details["evaluation_rows"] > 0 and details["checkpoint_files"] <= 2
    assert report.recovery_s > 0
