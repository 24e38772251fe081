"""Consumer groups that start where the prompts topic ends now, for tests and benchmarks.

A worker in a new group would otherwise read ``adfame.prompts`` from its beginning (the consumers'
``auto_offset_reset`` is ``earliest``) and serve every prompt other runs left there.
"""

from __future__ import annotations

from kafka import TopicPartition

from adfame.contracts import PROMPTS_TOPIC
from adfame.messaging import create_consumer
from adfame.settings import Settings


def start_group_at_the_end(settings: Settings, group: str) -> None:
    """Commit the end of adfame.prompts for ``group``: a worker of that group serves only what is queued
    from now on (not what other tests left on the shared topic)."""
    consumer = create_consumer(group, [], settings)
    try:
        partitions = [TopicPartition(PROMPTS_TOPIC, p) for p in consumer.partitions_for_topic(PROMPTS_TOPIC)]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end now, so that commit() stores it
            consumer.position(partition)
        consumer.commit()
    finally:
        consumer.close()
