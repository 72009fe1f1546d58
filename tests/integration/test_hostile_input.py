"""Hostile input on the real broker and Redis: poison records cost no honest window and
crash no replica; dead letters are bounded, and a dead-letter topic that refuses them
stalls the partition instead of ending the process or passing the fence."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client import REGISTRY

from services.common.kafka import make_admin, make_producer
from services.common.kafka import produce as produce_bounded
from services.common.schema import encode_event
from services.processor.dead_letters import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    DeadLetterError,
    DeadLetters,
)
from statestore import StateStore
from tests.integration.harness import (
    PAST,
    WINDOW_S,
    Replicas,
    all_final,
    assert_ground_truth,
    dataset,
    expected_windows,
    produce,
    read_windows,
)
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def produce_raw(config, records, topic=None) -> list[tuple[int, int]]:
    """Produce (key, value, partition, timestamp_ms or None); their (partition, offset)s."""
    producer = make_producer(config, **{"linger.ms": 5})
    delivered: list = []

    def on_delivery(error, message):
        assert error is None, error
        delivered.append((message.partition(), message.offset()))

    for key, value, partition, timestamp_ms in records:
        extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
        produce_bounded(
            producer,
            topic or config.events_topic,
            value,
            key=key,
            partition=partition,
            on_delivery=on_delivery,
            **extra,
        )
    assert producer.flush(30) == 0
    return delivered


def poison(honest: bytes) -> dict[str, list[tuple[bytes, int | None]]]:
    """Poison record values by the DLQ reason each must get, with its record timestamp."""
    event = json.loads(honest)

    def variant(**changes) -> bytes:
        return json.dumps({**event, **changes}).encode()

    nested = honest[:-1] + b', "extra": ' + b'{"a": ' * 1500 + b"1" + b"}" * 1500 + b"}"
    phone_ahead = datetime.fromtimestamp(time.time() + 2 * 3600, UTC).isoformat()
    return {
        "undecodable": [(nested, None)],
        "invalid_value": [
            (variant(timestamp="9999-12-31T23:59:59Z"), None),
            (honest[:-1] + b', "duration_ms": 1' + b"0" * 400 + b"}", None),
            (honest[:-1] + b', "duration_ms": 1e999}', None),
        ],
        "future_timestamp": [
            (variant(timestamp="2099-06-01T00:00:00Z"), None),
            (variant(timestamp=phone_ahead), None),  # an honest phone two hours fast
        ],
        # A hand-made client's record without a timestamp: its event time has no bound.
        "no_record_timestamp": [(honest, -1)],
    }


def dead_letters_in_redis(config, namespace, partitions: int) -> Counter:
    store = StateStore.from_url(config.redis_url, namespace, config.events_topic)
    counted: Counter = Counter()
    for state in store.partition_states(range(partitions)).values():
        counted.update(state.dead_letters)
    return counted


def test_poison_records_cost_no_honest_window_and_no_replica_exit(pipeline, tmp_path):
    events = dataset(seed=21, start=PAST, seconds=6 * WINDOW_S, events=24_000)
    config = pipeline.config()
    kinds = poison(encode_event(events[0]))
    poisoned = [
        (reason, value, timestamp)
        for reason, values in kinds.items()
        for value, timestamp in values
    ]
    produce(config, events[:12_000])
    # Each partition gets poison mid-stream: honest records follow it on the same partition.
    produce_raw(
        config,
        [
            (f"poison-{i}".encode(), value, i % pipeline.partitions, timestamp)
            for i, (_reason, value, timestamp) in enumerate(poisoned)
        ],
    )
    produce(config, events[12_000:])
    expected = expected_windows(events)
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(2)
    try:
        published = read_windows(config, all_final(expected))
        dead = read_topic(config, config.dlq_topic, expected=len(poisoned), timeout_s=30)
        alive = [replica.alive() for replica in replicas.replicas.values()]
    finally:
        codes = replicas.stop_all()
    assert alive == [True, True] and codes == [0, 0], replicas.logs()
    assert_ground_truth(published, expected)
    want = Counter(reason for reason, _value, _timestamp in poisoned)
    assert Counter(dict(m.headers())["dlq.reason"].decode() for m in dead) == want
    assert (
        dead_letters_in_redis(config, pipeline.environ["STATE_NAMESPACE"], pipeline.partitions)
        == want
    )
    newest_honest = max(event.timestamp.timestamp() for event in events)
    store = StateStore.from_url(
        config.redis_url, pipeline.environ["STATE_NAMESPACE"], config.events_topic
    )
    for state in store.partition_states(range(pipeline.partitions)).values():
        assert state.watermark_s is not None and state.watermark_s <= newest_honest, state


def set_max_message_bytes(config, topic: str, size: int) -> None:
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", str(size), incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin = make_admin(config)  # held until the futures resolve: they die with it
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()


def rejected_record(value: bytes, offset: int = 7) -> Message:
    return Message(topic="events", partition=2, offset=offset, key=b"user_1", value=value)


def refused_too_large() -> float:
    sample = REGISTRY.get_sample_value(
        "clickstream_dlq_produce_errors_total", {"error": "MSG_SIZE_TOO_LARGE"}
    )
    return sample or 0.0


def test_dead_letter_too_large_for_the_topic_is_refused_whole_and_fits_truncated(pipeline):
    config = pipeline.config()
    set_max_message_bytes(config, config.dlq_topic, 32 * 1024)
    value = random.Random(5).randbytes(200_000)  # incompressible: lz4 cannot shrink it
    refused_before = refused_too_large()
    whole = DeadLetters(make_producer(config), config.dlq_topic, max_value_bytes=10**6)
    whole.send(rejected_record(value), "too_large", "200000 bytes > 16384")
    with pytest.raises(DeadLetterError, match="MSG_SIZE_TOO_LARGE"):
        whole.confirm()
    assert refused_too_large() == refused_before + 1

    bounded = DeadLetters(make_producer(config), config.dlq_topic, max_value_bytes=16 * 1024)
    bounded.send(rejected_record(value, offset=8), "too_large", "200000 bytes > 16384")
    bounded.confirm()
    [dead] = read_topic(config, config.dlq_topic, expected=1, timeout_s=30)
    headers = dict(dead.headers())
    assert dead.value() == value[: 16 * 1024]
    assert headers["dlq.original.size"] == b"200000"
    assert headers["dlq.original.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["dlq.source.offset"] == b"8"


def test_default_bound_fits_a_near_megabyte_record_under_the_broker_default(pipeline):
    config = pipeline.config()
    value = random.Random(6).randbytes(1_000_000)
    dead_letters = DeadLetters(make_producer(config), config.dlq_topic)
    dead_letters.send(rejected_record(value), "too_large", "1000000 bytes > 16384")
    dead_letters.confirm()
    [dead] = read_topic(config, config.dlq_topic, expected=1, timeout_s=30)
    assert dead.value() == value[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert dict(dead.headers())["dlq.original.size"] == b"1000000"


def held_back(replicas) -> int:
    return replicas.logs(tail_chars=10**7).count('"operation": "dead-letter confirm"')


def test_refused_dead_letter_holds_its_partition_back_until_the_topic_takes_it(pipeline, tmp_path):
    """The DLQ refuses every dead letter of one batch; the replica waits, never exits."""
    events = dataset(seed=22, start=PAST, seconds=4 * WINDOW_S, events=12_000)
    config = pipeline.config()
    namespace = pipeline.environ["STATE_NAMESPACE"]
    set_max_message_bytes(config, config.dlq_topic, 32 * 1024)
    oversized = random.Random(7).randbytes(200_000)
    produce(config, events[:6_000])
    [(partition, offset)] = produce_raw(config, [(b"big", oversized, 0, None)])
    produce(config, events[6_000:])
    expected = expected_windows(events)
    store = StateStore.from_url(config.redis_url, namespace, config.events_topic)
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(1)
    try:
        deadline = time.monotonic() + 60
        while held_back(replicas) < 2:  # refused, paused, read again, refused again
            assert time.monotonic() < deadline and replicas.replicas[0].alive(), replicas.logs()
            time.sleep(0.1)
        assert store.partition_states([partition])[partition].fence < offset
        set_max_message_bytes(config, config.dlq_topic, 1_048_588)
        published = read_windows(config, all_final(expected), timeout_s=90)
        dead = read_topic(config, config.dlq_topic, expected=1, timeout_s=30)
        alive = replicas.replicas[0].alive()
    finally:
        codes = replicas.stop_all()
    assert alive and codes == [0], replicas.logs()
    assert_ground_truth(published, expected)
    assert store.partition_states([partition])[partition].fence >= offset
    too_large = [m for m in dead if dict(m.headers())["dlq.reason"] == b"too_large"]
    assert len(too_large) >= 1  # at least once: an earlier refused try may also have landed
    headers = dict(too_large[0].headers())
    assert too_large[0].value() == oversized[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert headers["dlq.original.size"] == b"200000"
    assert headers["dlq.source.offset"] == str(offset).encode()
    assert dead_letters_in_redis(config, namespace, pipeline.partitions) == {"too_large": 1}
