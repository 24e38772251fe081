"""Shared test set-up: Airflow must not write to ~/airflow when a test imports it."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="adfame-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# py4j logs from its atexit hook after pytest has closed the streams; that line is noise.
logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole run: a JVM start costs seconds, and the machine has 2 cores."""
    from spark_jobs.session import get_spark  # lazily: tests without Spark never start a JVM

    session = get_spark("adfame-tests", master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def design_tables() -> frozenset[str]:
    """The schema design's tables: the migration files must create each, and a migrated database hold it."""
    return frozenset(
        {
            "etl_runs",
            "dataset_clips",
            "dataset_snapshots",
            "generation_requests",
            "candidates",
            "selections",
            "retrain_milestones",
            "deployments",
            "monitoring_metrics",
            "drift_reports",
            "dashboard_stats",
        }
    )
