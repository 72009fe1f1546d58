"""Replay and record against the real broker: byte-exact, keyed, complete."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from load import dataset
from load.cli import SETTINGS as LOAD_SETTINGS
from load.generate import Plan, generate, write_dataset
from load.record import record_topic
from load.replay import Pacing, replay
from services.common.kafka import make_producer
from services.common.schema import InvalidEvent, decode_event
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.integration

PLAN = Plan(
    events=4000,
    windows=3,
    window_seconds=10,
    grace_seconds=2,
    allowed_lateness_seconds=20,
    users=200,
    seed=11,
    malformed=0.03,
    too_late=0.01,
)


@pytest.fixture
def small_dataset(tmp_path):
    path = tmp_path / "small.jsonl.gz"
    write_dataset(PLAN, path)
    return path


def _by_key(pairs):
    grouped = defaultdict(list)
    for key, value in pairs:
        grouped[key].append(value)
    return dict(grouped)


def test_max_speed_replay_delivers_every_record_byte_for_byte_in_key_order(pipeline, small_dataset):
    config = pipeline.config(LOAD_SETTINGS)
    result = replay(config, small_dataset, config.events_topic)
    assert result.ok and result.events == PLAN.events

    records = read_topic(config, config.events_topic, expected=PLAN.events)
    assert len(records) == PLAN.events
    source = dataset.read(small_dataset)
    # Per key, the records arrive in file order with identical bytes (empty values included).
    assert _by_key((m.key(), m.value() or b"") for m in records) == _by_key(
        (r.key, r.value or b"") for r in source
    )
    partitions_of_key = defaultdict(set)
    for message in records:
        partitions_of_key[message.key()].add(message.partition())
    assert all(len(p) == 1 for p in partitions_of_key.values())


def test_shifted_paced_replay_moves_only_valid_event_times(pipeline, small_dataset):
    config = pipeline.config(LOAD_SETTINGS)
    shift = 10 * 8_640_000  # a whole number of 10 s windows: 1000 days
    result = replay(config, small_dataset, config.events_topic, Pacing(rate=50_000), shift)
    assert result.ok and result.shift_seconds == shift

    records = read_topic(config, config.events_topic, expected=PLAN.events)
    sent = _by_key((m.key(), m.value() or b"") for m in records)
    shifted = malformed = 0
    for record in dataset.read(small_dataset):
        got = sent[record.key].pop(0)
        if record.kind in ("valid", "out_of_order", "late", "too_late"):
            before, after = decode_event(record.value), decode_event(got)
            assert after.timestamp.timestamp() - before.timestamp.timestamp() == shift
            assert after.event_id == before.event_id
            shifted += 1
        else:
            assert got == (record.value or b"")
            with pytest.raises(InvalidEvent):
                decode_event(got)
            malformed += 1
    assert shifted + malformed == PLAN.events and malformed > 0


def test_record_captures_a_time_range_and_replays_identically(pipeline, tmp_path):
    config = pipeline.config(LOAD_SETTINGS)
    producer = make_producer(config)
    now_ms = int(time.time() * 1000)
    older, newer = now_ms - 3_600_000, now_ms - 1_800_000
    events = list(generate(PLAN))[:600]
    for n, record in enumerate(events):
        producer.produce(
            config.events_topic, record.value, record.key, timestamp=older if n < 200 else newer + n
        )
    assert producer.flush(30) == 0

    everything = tmp_path / "all.jsonl.gz"
    assert record_topic(config, config.events_topic, everything).records == 600
    recent = tmp_path / "recent.jsonl.gz"
    captured = record_topic(config, config.events_topic, recent, since=(older + newer) / 2000)
    assert captured.records == 400
    recorded = dataset.read(recent)
    assert sorted((r.key, r.value or b"") for r in recorded) == sorted(
        (r.key, r.value or b"") for r in events[200:]
    )
    arrivals = [r.arrival for r in recorded]
    assert arrivals == sorted(arrivals) and arrivals[0] * 1000 >= newer
    for record in recorded:
        if record.event_time is not None:
            assert record.event_time == decode_event(record.value).timestamp.timestamp()

    until = record_topic(
        config, config.events_topic, tmp_path / "old.jsonl.gz", until=(older + newer) / 2000
    )
    assert until.records == 200
