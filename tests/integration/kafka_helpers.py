"""Reading topics back in tests: a throwaway consumer that waits on a condition, never a sleep."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message, TopicPartition

from services.common.config import Config
from services.common.kafka import make_consumer


def read_topic(config: Config, topic: str, expected: int, timeout_s: float = 60.0) -> list[Message]:
    """Every record of `topic` from the beginning, until `expected` arrive or the deadline."""
    consumer = make_consumer(config, f"test-reader-{uuid.uuid4().hex[:8]}")
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    consumer.assign(partitions)
    records: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error() is None:
                    records.append(message)
    finally:
        consumer.close()
    return records


def end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic, timeout=10)
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in metadata.topics[topic].partitions
    }
