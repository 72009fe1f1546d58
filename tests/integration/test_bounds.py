"""Bounded outputs and state on the real broker and Redis, with a real processor."""

from __future__ import annotations

import json
import random
import string
import time
from collections import Counter

import msgspec
import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

from services.common.kafka import make_admin, make_producer
from services.common.window_record import BREAKDOWN_TOP_N, MAX_RECORD_BYTES, OTHER, parse_iso
from statestore import StateStore
from tests.integration.harness import (
    PAST,
    WINDOW_S,
    Replicas,
    all_final,
    dataset,
    expected_windows,
    mismatches,
    produce,
    read_windows,
)

pytestmark = pytest.mark.integration

SMALL_MESSAGE_BYTES = 64 * 1024  # the metrics topic's max.message.bytes in this test


def random_names(count: int, seed: int) -> list[str]:
    """Distinct names that lz4 cannot shrink much, so a record's size is close to its bytes."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    return [f"{n:05d}-" + "".join(rng.choices(alphabet, k=24)) for n in range(count)]


def refused_by_broker(config, topic: str, value: bytes) -> KafkaError | None:
    producer = make_producer(config)
    errors: list[KafkaError] = []
    producer.produce(topic, value, on_delivery=lambda error, _m: errors.append(error))
    producer.flush(30)
    return errors[0] if errors else None


def test_thousands_of_categories_publish_bounded_records_a_small_topic_accepts(pipeline, tmp_path):
    generated = dataset(seed=5, start=PAST, seconds=2 * WINDOW_S, events=8000)
    events = [
        msgspec.structs.replace(
            event, page_category=category, page_url=f"{event.page_url}?visit={n}#top"
        )
        for n, (event, category) in enumerate(
            zip(generated, random_names(len(generated), seed=5), strict=True)
        )
    ]
    config = pipeline.config()
    metrics_topic = f"{config.metrics_topic}-small"
    admin = make_admin(config)
    topic = NewTopic(metrics_topic, 3, 1, config={"max.message.bytes": str(SMALL_MESSAGE_BYTES)})
    admin.create_topics([topic])[metrics_topic].result()
    try:
        # What an unbounded record would carry: the broker refuses it on this topic.
        all_categories = dict(Counter(event.page_category for event in events[:4000]))
        unbounded = json.dumps({"categories": all_categories}).encode()
        error = refused_by_broker(config, metrics_topic, unbounded)
        assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE, error

        produce(config, events)
        expected = expected_windows(events)
        replicas = Replicas(pipeline.environ, tmp_path, METRICS_TOPIC=metrics_topic)
        replicas.start_all(1)
        try:
            small = pipeline.config(METRICS_TOPIC=metrics_topic)
            published = read_windows(small, all_final(expected))
            store = StateStore.from_url(
                config.redis_url, pipeline.environ["STATE_NAMESPACE"], config.events_topic
            )
            working_keys = [
                key
                for start in expected
                for partition in range(pipeline.partitions)
                for key in store.keys.window(partition, int(parse_iso(start)))
            ]
            deadline = time.monotonic() + 30
            while store.redis.exists(*working_keys):
                assert time.monotonic() < deadline, "final windows kept their working keys"
                time.sleep(0.1)
        finally:
            assert replicas.stop_all() == [0], replicas.logs()
    finally:
        admin.delete_topics([metrics_topic])
    assert len(expected) == 2
    for start, want in expected.items():
        record = published.final(start)
        assert record is not None, start
        assert not mismatches(want, record), mismatches(want, record)
        assert len(record.categories) == BREAKDOWN_TOP_N + 1 and OTHER in record.categories
        assert sum(record.categories.values()) == record.total_events
        assert len(msgspec.json.encode(record)) <= min(MAX_RECORD_BYTES, SMALL_MESSAGE_BYTES)
        assert all("?" not in page and "#" not in page for page in record.top_pages)
