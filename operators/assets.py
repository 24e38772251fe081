"""Airflow Assets that connect DAGs: a producer declares it as an outlet, a consumer schedules on it."""

from __future__ import annotations

from airflow.sdk import Asset

from adfame.contracts import CHALLENGER_ALIAS, DATASETS_BUCKET, REGISTERED_MODEL

# Updated by nightly_etl each time a new curated snapshot is loaded; retrain_on_feedback reads it.
CURATED_SNAPSHOT = Asset(name="curated_snapshot", uri=f"s3://{DATASETS_BUCKET}/snapshots/")

# Updated by retrain_on_feedback each time a new version of the registered model gets alias challenger
# (the event's extra names it: name, version, milestone); canary_rollout schedules on it.
CHALLENGER_MODEL = Asset(
    name="challenger_model", uri=f"adfame://models/{REGISTERED_MODEL}/{CHALLENGER_ALIAS}"
)
