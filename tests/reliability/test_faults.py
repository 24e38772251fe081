"""Faults under a marketer's traffic on the real stack: nothing accepted is lost, nothing is done twice.

Each test injects one fault (issue 12, faults a-f; g, a training task killed mid-run, is tested with the
Edge executor) into a small traffic run of ``adfame simulate --select``'s marketer through the REST API,
served by two real workers, and asserts on the ``FaultReport`` that ``devkit.faults.scenarios`` reads from
PostgreSQL, the object store and Kafka: zero lost, zero duplicated, plus what the fault itself must show.
Every scenario brings every service back in ``finally``; ``python -m bench.faults`` runs them larger.
"""

from __future__ import annotations

import pytest

from devkit.fault_report import FaultReport
from devkit.faults import scenarios
from devkit.faults.rig import FaultRig

pytestmark = pytest.mark.integration


def assert_clean(report: FaultReport) -> None:
    print(report.as_row())  # the row bench.faults prints; shown with -s or on failure
    assert (report.lost, report.duplicated) == (0, 0), report.details
    assert report.accepted > 0 and report.details["statuses"] == {"succeeded": report.details["accepted"]}
    assert report.details["dead_letters"] == 0


def test_a_sigkill_storm_of_the_workers_loses_and_repeats_nothing(fault_rig: FaultRig) -> None:
    report = scenarios.sigkill_storm(fault_rig, scenarios.Load(6, 1.0), kills=3, interval_s=2.0)
    assert_clean(report)
    assert report.details["kills"] == 3
    assert [worker.starts for worker in fault_rig.workers] == [3, 2]  # killed and started again
    assert all(worker.running for worker in fault_rig.workers)


def test_a_kafka_broker_restart_loses_and_repeats_nothing(fault_rig: FaultRig) -> None:
    assert_clean(scenarios.kafka_restart(fault_rig, scenarios.Load(4, 1.0)))


def test_an_object_store_outage_delays_requests_and_loses_nothing(fault_rig: FaultRig) -> None:
    report = scenarios.object_store_outage(fault_rig, scenarios.Load(4, 0.5), outage_s=15.0)
    assert_clean(report)
    assert report.details["failed_during_outage"] == 0, "an outage must not fail a request"
    logs = "".join(w.log_path.read_text() for w in fault_rig.workers)
    assert "ObjectStoreError" in logs and "reading the message again" in logs


def test_a_postgresql_restart_loses_and_repeats_nothing(fault_rig: FaultRig) -> None:
    assert_clean(scenarios.postgres_restart(fault_rig, scenarios.Load(4, 1.0)))


def test_a_milestone_reached_while_airflow_is_down_starts_one_dag_run_once_it_is_back(
    fault_rig: FaultRig,
) -> None:
    report = scenarios.airflow_outage_across_milestone(fault_rig, scenarios.Load(3, 1.0))
    assert_clean(report)
    details = report.details
    assert report.unit == "milestones" and report.accepted == 1
    assert details["failed_attempts"] >= 2 and "not reachable" in details["error_while_down"]
    # A forgotten trigger (its answer lost) is sent again: Airflow's 409 counts as done, still one run.
    assert details["retriggered"] == [details["milestone"]]


def test_workers_switch_versions_only_once_mlflow_is_back_and_serve_meanwhile(fault_rig: FaultRig) -> None:
    report = scenarios.mlflow_outage_during_switch(fault_rig, scenarios.Load(6, 0.5), outage_s=5.0)
    assert_clean(report)
    model = fault_rig.registered_model
    assert "failed" not in report.details["served_during_outage"]
    assert report.details["switched_after_s"] is not None
    assert report.details["versions"] == ["1", "2"]
    assert {f"{model}/1", f"{model}/2"} <= set(report.details["served_by"])
