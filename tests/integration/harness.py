"""Running the real pipeline in tests: datasets, processor subprocesses, published windows.

Expected windows are computed here independently of the processor, one event at
a time with plain Python sets and counters.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import TopicPartition

from load.dataset import VALID, Record
from load.fleet import ProcessorFleet, processor_env
from load.truth import ground_truth
from load.verdict import compare_window
from services.common import config as cfg
from services.common.config import Config
from services.common.kafka import make_consumer, make_producer
from services.common.kafka import produce as produce_bounded
from services.common.schema import ClickEvent, encode_event
from services.common.window_record import WindowRecord, decode_record
from services.producer.generator import TrafficGenerator

# Short windows so a test sees many of them close in seconds.
PROCESSOR_ENV = {
    "WINDOW_SECONDS": "10",
    "GRACE_SECONDS": "2",
    "IDLE_PARTITION_SECONDS": "2",
    "ALLOWED_LATENESS_SECONDS": "5",
    "EMIT_INTERVAL_MS": "100",
    "SESSION_TIMEOUT_MS": "3000",
    "BATCH_MAX_WAIT_MS": "50",
}
WINDOW_S = 10
PAST = 1_767_225_600  # 2026-01-01T00:00:00Z: replayed history, far behind wall clock


def dataset(
    seed: int, start: float, seconds: float, events: int, users: int = 300
) -> list[ClickEvent]:
    """`events` generated events spread evenly over `seconds` of event time from `start`."""
    generator = TrafficGenerator(users=users, seed=seed)
    step = seconds / events
    return [generator.next_event(start + i * step) for i in range(events)]


def produce(
    config: Config,
    events: Iterable[ClickEvent | tuple[bytes, bytes | None]],
    partition_of=None,
) -> int:
    """Produce events (key = user_id) or raw (key, value) records; wait for every delivery.

    `partition_of(event)` pins events to partitions instead of hashing the key.
    """
    producer = make_producer(config, **{"linger.ms": 20})
    failures: list = []
    count = 0
    for item in events:
        if isinstance(item, ClickEvent):
            key, value = item.user_id.encode(), encode_event(item)
        else:
            key, value = item
        extra = {} if partition_of is None else {"partition": partition_of(item)}
        produce_bounded(
            producer,
            config.events_topic,
            value,
            key=key,
            on_delivery=lambda err, _m: err and failures.append(err),
            **extra,
        )
        count += 1
    assert producer.flush(60) == 0 and not failures, failures
    return count


def expected_windows(events: Iterable[ClickEvent], window_s: int = WINDOW_S) -> dict[str, dict]:
    """The exact per-window aggregates, keyed by ISO window start (load.truth's ground truth)."""
    records = (Record(None, encode_event(event), kind=VALID) for event in events)
    return ground_truth(records, window_s)["windows"]


def within_two_percent(expected: int) -> float:
    """The processor tests' bound on unique counts: 2%, or 2 for small counts."""
    return max(2, expected * 0.02)


def mismatches(expected: dict, record: WindowRecord) -> list[str]:
    """Fields of `record` that differ from the expected window (unique counts within 2%)."""
    return [str(m) for m in compare_window(expected, record, tolerance=within_two_percent)]


@dataclass
class PublishedWindows:
    records: dict[str, list[WindowRecord]] = field(default_factory=lambda: defaultdict(list))

    def final(self, window_start: str) -> WindowRecord | None:
        finals = [r for r in self.records.get(window_start, []) if r.final]
        return finals[-1] if finals else None

    def last(self, window_start: str) -> WindowRecord | None:
        records = self.records.get(window_start)
        return records[-1] if records else None


def read_windows(config: Config, until, timeout_s: float = 90.0) -> PublishedWindows:
    """Read the metrics topic from the beginning until `until(published)` holds or time runs out."""
    consumer = make_consumer(config, f"test-metrics-{uuid.uuid4().hex[:8]}")
    metadata = consumer.list_topics(config.metrics_topic, timeout=10)
    consumer.assign(
        [
            TopicPartition(config.metrics_topic, p, 0)
            for p in metadata.topics[config.metrics_topic].partitions
        ]
    )
    published = PublishedWindows()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    published.records[message.key().decode()].append(decode_record(message.value()))
            if until(published):
                break
    finally:
        consumer.close()
    return published


def all_final(window_starts: Iterable[str]):
    starts = list(window_starts)
    return lambda published: all(published.final(start) for start in starts)


class Replicas(ProcessorFleet):
    """Processor subprocesses with the tests' short windows."""

    def __init__(self, environ: dict[str, str], log_dir: Path, **overrides: str):
        settings = {"STATE_NAMESPACE": environ["STATE_NAMESPACE"], **PROCESSOR_ENV, **overrides}
        super().__init__(processor_env(cfg.load(cfg.SHARED, environ=environ), **settings), log_dir)


def assert_ground_truth(published: PublishedWindows, expected: dict[str, dict]) -> None:
    """Every expected window has a final record equal to the truth (unique counts within 2%)."""
    problems = {}
    for start, want in expected.items():
        record = published.final(start)
        if record is None:
            problems[start] = ["no final record"]
        elif found := mismatches(want, record):
            problems[start] = found
    assert not problems, problems


def assert_revisions_well_formed(published: PublishedWindows) -> None:
    """Revisions of a window run 1, 2, ... and a re-published revision is the same bytes."""
    for start, records in published.records.items():
        seen = {}
        for record in records:
            if record.revision in seen:  # a re-published revision must be the same bytes
                assert record.content() == seen[record.revision], start
            seen[record.revision] = record.content()
        assert sorted(seen) == list(range(1, len(seen) + 1)), (start, sorted(seen))


def paced_produce(config: Config, events: list[ClickEvent], seconds: float) -> None:
    """Produce `events` in slices spread over about `seconds`."""
    slices = 20
    size = len(events) // slices + 1
    for index in range(slices):
        produce(config, events[index * size : (index + 1) * size])
        time.sleep(seconds / slices)


def applied(store, partitions: int) -> int:
    """Records whose effect is in Redis, by the fences of the first `partitions` partitions."""
    return sum(state.fence + 1 for state in store.partition_states(range(partitions)).values())


def wait_until(condition, message: str, timeout_s: float = 60.0) -> None:
    """Poll `condition` until it holds; fail with `message` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
