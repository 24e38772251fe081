"""Round trips through the real Kafka broker."""

from __future__ import annotations

import uuid

import pytest

from adfame.contracts import TOPICS, TopicSpec
from adfame.messaging import create_admin, create_consumer, create_producer, decode_json, ensure_topics

pytestmark = pytest.mark.integration


def test_contract_topics_exist_with_their_partitions(settings) -> None:
    admin = create_admin(settings)
    try:
        described = {t["name"]: t for t in admin.describe_topics([t.name for t in TOPICS])}
    finally:
        admin.close()
    for spec in TOPICS:
        assert len(described[spec.name]["partitions"]) == spec.partitions


def test_produce_then_consume_in_a_group(settings) -> None:
    topic = f"adfame.test.{uuid.uuid4().hex[:8]}"
    assert ensure_topics([TopicSpec(topic, partitions=2, retention_ms=3_600_000)], settings) == [topic]
    assert ensure_topics([TopicSpec(topic, partitions=2, retention_ms=3_600_000)], settings) == []

    producer = create_producer(settings)
    sent = [{"request_id": str(uuid.uuid4()), "n": i} for i in range(5)]
    for message in sent:
        producer.send(topic, key=message["request_id"], value=message)
    producer.flush(timeout=10)
    producer.close()

    consumer = create_consumer(f"test-{uuid.uuid4().hex[:6]}", [topic], settings, max_poll_records=10)
    received = []
    try:
        for _ in range(40):
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
            if len(received) >= len(sent):
                break
        consumer.commit()
    finally:
        consumer.close()
    assert sorted(decode_json(r.value)["n"] for r in received) == [0, 1, 2, 3, 4]
    assert {r.key for r in received} == {m["request_id"] for m in sent}
