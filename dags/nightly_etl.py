"""
### nightly_etl

Curates brand-relevant training clips from public video-caption sets every night
without downloading what it does not need.

1. **ingest**: metadata CSVs/parquet through `huggingface_hub` (a hub repo, or a
   mirror folder / S3 prefix set in the run's conf under `sources`).
2. **curate** (PySpark): normalise captions, drop duplicates and bad rows (counted),
   brand/duration/quality filters, tags; VidProM prompts filtered by toxicity.
3. **extract**: only the selected clips, by ranged reads of the zip parts; each clip
   decoded (corrupt ones quarantined and counted) and resized; ad images resized.
4. **split**: 70/15/15, deterministic, no caption or source video in two splits.
5. **gate**: Great Expectations; a failure stops the run before anything is loaded.
6. **load**: clips + manifest to `s3://adfame-datasets/snapshots/<id>/`, rows to
   PostgreSQL in one transaction; updates the `curated_snapshot` asset.

Conf (all optional): `snapshot_id` (default: the run's date), and the sections of
`etl.config.EtlConfig` (`sources`, `filters`, `media`, `split`, `gate`).
Re-running a snapshot loads nothing twice. An error the data or the conf causes fails
its task at once (no retries), naming the cause; every run has an `etl_runs` row
(`running`, `succeeded`, or `failed` with the failing task and its error).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TaskGroup

from etl import pipeline
from operators.assets import CURATED_SNAPSHOT
from operators.dag_defaults import adfame_dag
from operators.etl_step import EtlStepOperator

with adfame_dag(
    "nightly_etl", "@daily", owner="data", tags=["etl"], retry_delay=timedelta(minutes=1), doc_md=__doc__
):
    with TaskGroup("ingest"):
        fetch = EtlStepOperator(step=pipeline.fetch_metadata)
    with TaskGroup("curate"):
        clips = EtlStepOperator(step=pipeline.curate_clips)
        prompts = EtlStepOperator(step=pipeline.filter_prompts)
    with TaskGroup("extract"):
        videos = EtlStepOperator(step=pipeline.extract_clips, execution_timeout=timedelta(hours=6))
        images = EtlStepOperator(step=pipeline.resize_images)
    with TaskGroup("split"):
        split = EtlStepOperator(step=pipeline.assign_splits)
    with TaskGroup("gate"):
        gate = EtlStepOperator(step=pipeline.validate)
    with TaskGroup("load"):
        load = EtlStepOperator(step=pipeline.load_snapshot, outlets=[CURATED_SNAPSHOT])

    fetch >> [clips, prompts, images]
    clips >> videos >> split >> gate
    [prompts, images, gate] >> load
