"""What `adfame dags trigger --wait` reads from a failed task's log (the REST API's structured events,
as Airflow 3 returns them): the root cause's error line and the log file's path."""

from __future__ import annotations

from adfame.airflow_client import read_failure

PATH = "/state/airflow/logs/dag_id=nightly_etl/run_id=manual__1/task_id=ingest.fetch_metadata/attempt=1.log"
EVENTS = [
    {"event": "::group::Log message source details"},
    {"event": PATH},
    {"event": "::endgroup::"},
    {"event": "::group::Pre Execute", "level": "info"},
    {"event": "Filling up the DagBag from /dags/nightly_etl.py", "level": "info"},
    {"event": "::endgroup::", "level": "info"},
    {
        "event": "Task failed with exception",
        "level": "error",
        "error_detail": [
            {
                "exc_type": "AirflowFailException",
                "exc_value": "snapshot_id 'a b' may hold only ...",
                "is_cause": False,
            },
            {"exc_type": "BadRunConf", "exc_value": "snapshot_id 'a b' may hold only ...", "is_cause": True},
        ],
    },
    {"event": "::group::Post Execute", "level": "info"},
]


def test_the_root_cause_and_the_log_path() -> None:
    assert read_failure(EVENTS) == ("BadRunConf: snapshot_id 'a b' may hold only ...", (PATH,))


def test_sources_listed_in_the_group_event_and_an_error_without_details() -> None:
    events = [
        {"event": "::group::Log message source details", "sources": ["/a.log", "http://worker:8793/a.log"]},
        {"event": "::endgroup::"},
        {"event": "Process exited with code -9", "level": "error"},
    ]
    assert read_failure(events) == ("Process exited with code -9", ("/a.log", "http://worker:8793/a.log"))


def test_a_log_without_an_error() -> None:
    assert read_failure([{"event": "hello", "level": "info"}]) == ("no error line in the task's log", ())
