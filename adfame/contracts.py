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

# Airflow
RETRAIN_DAG_ID = "retrain_on_feedback"
SELECTIONS_PER_RETRAIN = 200


def video_object_key(tenant: str, request_id: str, index: int) -> str:
    """Where a generated candidate lives in VIDEOS_BUCKET."""
    return f"{tenant}/{request_id}/{index}.mp4"
