"""Kafka producer, consumer and admin factories (kafka-python), configured once.

Messages are JSON with string keys. Producers wait for all in-sync replicas
and are idempotent; consumers never auto-commit, so a worker commits an
offset only after its results are durable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.serializer import Deserializer, Serializer

from adfame.contracts import TOPICS, TopicSpec
from adfame.settings import Settings, get_settings

# How long a client waits for the first broker before giving up with a clear error.
BOOTSTRAP_TIMEOUT_MS = 10_000


class MessagingError(RuntimeError):
    """Kafka could not be reached or refused a request; the message says which broker."""


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def decode_json(raw: bytes | None) -> Any:
    """Decode a JSON payload; raises ValueError on bytes that are not JSON (poison messages)."""
    if raw is None:
        return None
    return json.loads(raw.decode("utf-8"))


class _StringKey(Serializer):
    def serialize(self, topic: str, headers: list, data: str | None) -> bytes | None:
        return data.encode() if data is not None else None


class _JsonValue(Serializer):
    def serialize(self, topic: str, headers: list, data: Any) -> bytes | None:
        # Raw bytes pass through, so tests and tools can publish a malformed message on purpose.
        return data if data is None or isinstance(data, bytes) else encode_json(data)


class _StringKeyReader(Deserializer):
    def deserialize(self, topic: str, headers: list, data: bytes | None) -> str | None:
        return data.decode() if data is not None else None


def _unreachable(settings: Settings, exc: Exception) -> MessagingError:
    return MessagingError(
        f"Kafka at {settings.kafka_bootstrap} is not reachable ({exc}); is it running? "
        "Try `adfame stack status`."
    )


def create_producer(settings: Settings | None = None, **overrides: Any) -> KafkaProducer:
    settings = settings or get_settings()
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "client_id": "adfame-producer",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,  # our sends are single, latency-bound messages whose ack the caller awaits
        "key_serializer": _StringKey(),
        "value_serializer": _JsonValue(),
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaTimeoutError as exc:
        raise _unreachable(settings, exc) from exc


def create_consumer(
    group_id: str, topics: Iterable[str], settings: Settings | None = None, **overrides: Any
) -> KafkaConsumer:
    """A group member that reads raw bytes: decoding is the caller's, so poison messages can be routed."""
    settings = settings or get_settings()
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "group_id": group_id,
        "client_id": f"adfame-{group_id}",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 1,
        "key_deserializer": _StringKeyReader(),
    }
    config.update(overrides)
    try:
        return KafkaConsumer(*topics, **config)
    except KafkaTimeoutError as exc:
        raise _unreachable(settings, exc) from exc


def create_admin(settings: Settings | None = None) -> KafkaAdminClient:
    settings = settings or get_settings()
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="adfame-admin",
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaTimeoutError as exc:
        raise _unreachable(settings, exc) from exc


def ensure_topics(specs: Iterable[TopicSpec] = TOPICS, settings: Settings | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = create_admin(settings)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=1,
                topic_configs={"retention.ms": str(s.retention_ms)},
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: the goal is met
            except KafkaError as exc:
                raise MessagingError(f"could not create topics {[t.name for t in new]}: {exc}") from exc
        return [t.name for t in new]
    finally:
        admin.close()
