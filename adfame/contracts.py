"""Names that several parts of AdFame share (docs/architecture.md#contracts), kept in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


# Kafka topics
PROMPTS_TOPIC = "adfame.prompts"
GENERATIONS_TOPIC = "adfame.generations"
PROMPTS_DLQ_TOPIC = "adfame.prompts.dlq"

_WEEK_MS = 7 * 24 * 3600 * 1000
TOPICS: tuple[TopicSpec, ...] = (
    # Several partitions so a consumer group of workers can share the load.
    TopicSpec(PROMPTS_TOPIC, partitions=6, retention_ms=_WEEK_MS),
    TopicSpec(GENERATIONS_TOPIC, partitions=3, retention_ms=_WEEK_MS),
    # Dead letters are kept longer: someone has to look at them.
    TopicSpec(PROMPTS_DLQ_TOPIC, partitions=1, retention_ms=4 * _WEEK_MS),
)

# Object store buckets
DATASETS_BUCKET = "adfame-datasets"
VIDEOS_BUCKET = "adfame-videos"
MODELS_BUCKET = "adfame-models"
MLFLOW_BUCKET = "adfame-mlflow"
BUCKETS: tuple[str, ...] = (DATASETS_BUCKET, VIDEOS_BUCKET, MODELS_BUCKET, MLFLOW_BUCKET)

# MLflow registry
REGISTERED_MODEL = "adfame-wan-lora"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
# What ``generation_requests.model_version`` (and monitoring's ``model_version``) says served a request:
# ``<registered model>/<version>``, or BASE_MODEL_VERSION when no version carried the alias.
BASE_MODEL_VERSION = "base"


def served_version_label(model_name: str, version: str) -> str:
    """The label a registry version's requests and metrics are recorded under."""
    return f"{model_name}/{version}"


# Airflow
RETRAIN_DAG_ID = "retrain_on_feedback"
MONITOR_DAG_ID = "monitor"
# Walks a challenger through its traffic steps (dags/canary_rollout.py); the API's MLflow webhook triggers it.
CANARY_DAG_ID = "canary_rollout"
SELECTIONS_PER_RETRAIN = 200

# Monitoring: the quality of served candidates, per model version in ``monitoring_metrics``
# (written by monitoring/quality.py; read by the canary judge, the alerts and the dashboard).
# Definitions: training/metrics.py (temporal consistency to the previous and to the first frame,
# flicker, motion).
QUALITY_TEMPORAL_CONSISTENCY = "quality.temporal_consistency"
QUALITY_TEMPORAL_CONSISTENCY_FIRST = "quality.temporal_consistency_first"
QUALITY_FLICKER = "quality.flicker"
QUALITY_MOTION = "quality.motion"
QUALITY_METRICS: tuple[str, ...] = (
    QUALITY_TEMPORAL_CONSISTENCY,
    QUALITY_TEMPORAL_CONSISTENCY_FIRST,
    QUALITY_FLICKER,
    QUALITY_MOTION,
)
# Which way is better, for the metrics a drop in quality is judged on (motion is neither: it is reported).
QUALITY_HIGHER_IS_BETTER: dict[str, bool] = {
    QUALITY_TEMPORAL_CONSISTENCY: True,
    QUALITY_TEMPORAL_CONSISTENCY_FIRST: True,
    QUALITY_FLICKER: False,
}


def video_object_key(tenant: str, request_id: str, index: int) -> str:
    """Where a generated candidate lives in VIDEOS_BUCKET."""
    return f"{tenant}/{request_id}/{index}.mp4"
