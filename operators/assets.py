"""Airflow Assets that connect DAGs: a producer declares it as an outlet, a consumer schedules on it."""

from __future__ import annotations

from airflow.sdk import Asset

from adfame.contracts import DATASETS_BUCKET

# Updated by nightly_etl each time a new curated snapshot is loaded; retrain_on_feedback reads it.
CURATED_SNAPSHOT = Asset(name="curated_snapshot", uri=f"s3://{DATASETS_BUCKET}/snapshots/")
