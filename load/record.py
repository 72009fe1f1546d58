"""Record a topic (or a time range of it) into a dataset file that `replay` can send elsewhere.

The range is resolved per partition with offsets_for_times: from the first
record at or after `since` to the last record before `until` (both by the
records' Kafka timestamps), or the whole retained topic up to its end offsets
at the start of the recording. Records are written in timestamp order (ties by
partition and offset) with `at` = their Kafka timestamp, so `--speed` replays
keep the original pacing; `t` is the event time of values that decode as
events. A consumer without a group commit is used: recording changes nothing
on the cluster.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from load import dataset
from load.dataset import Record
from services.common.config import Config
from services.common.kafka import make_consumer, partition_count, wait_for_broker
from services.common.logging import get_logger
from services.common.schema import InvalidEvent, decode_event

log = get_logger("load.record")


@dataclass
class RecordResult:
    records: int
    partitions: int
    seconds: float


def _offsets_at(
    consumer: Consumer, topic: str, partitions: int, at_ms: int | None, default: int
) -> dict[int, int]:
    """Per partition: the first offset whose timestamp is >= at_ms (or `default` for None)."""
    if at_ms is None:
        return dict.fromkeys(range(partitions), default)
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, at_ms) for p in range(partitions)], timeout=10
    )
    return {tp.partition: tp.offset for tp in found}


def record_topic(
    config: Config,
    topic: str,
    path: Path,
    since: float | None = None,
    until: float | None = None,
    timeout_s: float = 120.0,
) -> RecordResult:
    """Capture `topic` between `since` and `until` (epoch seconds) into `path`."""
    started = time.monotonic()
    consumer = make_consumer(config, f"clickstream-record-{uuid.uuid4().hex[:8]}")
    try:
        partitions = partition_count(wait_for_broker(consumer), topic)
        low_high = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(partitions)
        }
        starts = _offsets_at(consumer, topic, partitions, _ms(since), OFFSET_END)
        ends = _offsets_at(consumer, topic, partitions, _ms(until), OFFSET_END)
        begin: dict[int, int] = {}
        stop: dict[int, int] = {}
        for p, (low, high) in low_high.items():
            begin[p] = low if since is None else _resolve(starts[p], high)
            stop[p] = high if until is None else _resolve(ends[p], high)
        wanted = {p for p in range(partitions) if begin[p] < stop[p]}
        captured: list[tuple[int, int, int, Record]] = []
        if wanted:
            consumer.assign([TopicPartition(topic, p, begin[p]) for p in sorted(wanted)])
            deadline = time.monotonic() + timeout_s
            while wanted and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=10_000, timeout=0.5):
                    if message.error() is not None:
                        continue
                    p, offset = message.partition(), message.offset()
                    if p not in wanted or offset >= stop[p]:
                        continue
                    timestamp_ms = message.timestamp()[1]
                    captured.append((timestamp_ms, p, offset, _to_record(message, timestamp_ms)))
                # Position, not the last offset seen: offsets may have gaps (compaction).
                for position in consumer.position([TopicPartition(topic, p) for p in wanted]):
                    if position.offset >= stop[position.partition]:
                        wanted.discard(position.partition)
                        consumer.pause([TopicPartition(topic, position.partition)])
            if wanted:
                raise TimeoutError(
                    f"recording {topic} did not reach the end offsets of partitions "
                    f"{sorted(wanted)} within {timeout_s:.0f}s"
                )
    finally:
        consumer.close()
    captured.sort(key=lambda item: item[:3])
    written = dataset.write(path, (item[3] for item in captured))
    return RecordResult(written, partitions, time.monotonic() - started)


def _ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else int(epoch_s * 1000)


def _resolve(offset: int, high: int) -> int:
    # offsets_for_times answers -1 (OFFSET_END) when no record is that recent.
    return high if offset < 0 else offset


def _to_record(message, timestamp_ms: int) -> Record:
    value = message.value()
    event_time = None
    with contextlib.suppress(InvalidEvent):  # not an event: kept as is, without event time
        event_time = decode_event(value).timestamp.timestamp()
    return Record(message.key(), value, event_time, timestamp_ms / 1000)
