"""The processor's guarantees, on the real Kafka broker and Redis, with real subprocesses."""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
import zlib
from datetime import UTC, datetime

import pytest
import redis
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from load.ports import free_port
from services.common.config import redis_options
from services.common.kafka import make_admin
from services.common.schema import encode_event
from services.common.window_record import iso_utc, parse_iso
from services.common.windowing import Windowing
from services.processor.dead_letters import MAX_DEAD_LETTER_VALUE_BYTES
from statestore import StateStore
from tests.integration.harness import (
    PAST,
    WINDOW_S,
    Replicas,
    all_final,
    applied,
    assert_ground_truth,
    assert_revisions_well_formed,
    dataset,
    expected_windows,
    mismatches,
    paced_produce,
    produce,
    read_windows,
    wait_until,
)
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def test_published_windows_equal_ground_truth(pipeline, tmp_path):
    events = dataset(seed=1, start=PAST, seconds=6 * WINDOW_S, events=30_000)
    config = pipeline.config()
    produce(config, events)
    expected = expected_windows(events)
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(1)
    try:
        published = read_windows(config, all_final(expected))
    finally:
        assert replicas.stop_all() == [0], replicas.logs()
    assert len(expected) == 6
    assert_ground_truth(published, expected)
    assert_revisions_well_formed(published)


def test_one_three_and_six_replicas_publish_identical_windows(pipeline, tmp_path):
    events = dataset(seed=2, start=PAST, seconds=6 * WINDOW_S, events=30_000)
    produce(pipeline.config(), events)
    expected = expected_windows(events)
    admin = make_admin(pipeline.config())
    finals = {}
    for count in (1, 3, 6):
        run = uuid.uuid4().hex[:8]
        metrics_topic = f"{pipeline.environ['METRICS_TOPIC']}-{count}"
        admin.create_topics([NewTopic(metrics_topic, 3, 1)])["" + metrics_topic].result()
        overrides = {
            "METRICS_TOPIC": metrics_topic,
            "STATE_NAMESPACE": f"replicas-{run}",
            "CONSUMER_GROUP": f"replicas-{run}",
        }
        replicas = Replicas(pipeline.environ, tmp_path, **overrides)
        replicas.start_all(count)
        try:
            published = read_windows(pipeline.config(**overrides), all_final(expected))
        finally:
            replicas.stop_all()
        assert_ground_truth(published, expected)
        finals[count] = {
            start: {k: v for k, v in published.final(start).content() if k != "revision"}
            for start in expected
        }
    assert finals[1] == finals[3] == finals[6]


def test_killed_replica_mid_window_counts_every_event_once(pipeline, tmp_path):
    events = dataset(seed=3, start=PAST, seconds=6 * WINDOW_S, events=90_000)
    config = pipeline.config()
    expected = expected_windows(events)
    replicas = Replicas(pipeline.environ, tmp_path, BATCH_MAX_RECORDS="500")
    replicas.start_all(3)
    producing = threading.Thread(target=paced_produce, args=(config, events, 10.0))
    producing.start()
    rng = random.Random(3)
    try:
        while producing.is_alive():
            time.sleep(1.5)  # the pace of the chaos, not a synchronisation
            victim = rng.randrange(3)
            replicas.kill(victim)
            replicas.start(victim)
        producing.join()
        published = read_windows(config, all_final(expected), timeout_s=120)
    finally:
        replicas.stop_all()
    assert replicas.kills >= 4
    assert_ground_truth(published, expected)
    assert_revisions_well_formed(published)


def test_frozen_zombie_replica_resuming_after_takeover_counts_once(pipeline, tmp_path):
    """A replica frozen mid-run (think GC pause) wakes up after another took its work.

    The other replica is in a different group, so Kafka never revokes anything from
    the zombie: only the fence stands between its in-flight batches and the state.
    """
    events = dataset(seed=4, start=PAST, seconds=6 * WINDOW_S, events=60_000)
    config = pipeline.config()
    expected = expected_windows(events)
    store = StateStore.from_url(
        config.redis_url,
        pipeline.environ["STATE_NAMESPACE"],
        config.events_topic,
        **redis_options(config),
    )
    zombie = Replicas(
        pipeline.environ,
        tmp_path / "zombie",
        CONSUMER_GROUP="zombie",
        BATCH_MAX_RECORDS="50",
        METRICS_PORT=str(free_port()),
    )
    successor = Replicas(pipeline.environ, tmp_path / "successor", CONSUMER_GROUP="successor")
    produce(config, events)
    zombie.start_all(1)
    try:
        wait_until(
            lambda: applied(store, pipeline.partitions) >= 5_000, "the zombie never applied a batch"
        )
        zombie.replicas[0].process.send_signal(signal.SIGSTOP)
        frozen_at = applied(store, pipeline.partitions)
        assert frozen_at < len(events)
        successor.start_all(1)
        wait_until(
            lambda: applied(store, pipeline.partitions) == len(events),
            "the successor did not finish",
        )
        zombie.replicas[0].process.send_signal(signal.SIGCONT)
        wait_until(
            lambda: fence_met(zombie.replicas[0]) > 0, "the zombie never met the moved fence"
        )
        published = read_windows(config, all_final(expected))
    finally:
        zombie.stop_all()
        successor.stop_all()
    assert_ground_truth(published, expected)
    assert applied(store, pipeline.partitions) == len(events)


def fence_met(replica) -> float:
    """How often the replica met a fence another moved, from its /metrics: batches the
    apply script refused (clickstream_batches_total{result="stale"}; a refused batch
    may be settled after its partition was revoked, so it need not re-sync) plus
    re-syncs the punctuation found (clickstream_fence_resyncs_total)."""
    status, body = replica.get("/metrics")
    if status != 200:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name.endswith("_total")
        and (
            family.name == "clickstream_fence_resyncs"
            or (family.name == "clickstream_batches" and sample.labels.get("result") == "stale")
        )
    )


def test_windows_close_on_their_own_with_an_idle_partition(pipeline, tmp_path):
    """Live traffic on five partitions, none on the sixth, then silence."""
    window, grace, idle = 4, 1, 2
    config = pipeline.config()
    replicas = Replicas(
        pipeline.environ,
        tmp_path,
        WINDOW_SECONDS=str(window),
        GRACE_SECONDS=str(grace),
        IDLE_PARTITION_SECONDS=str(idle),
    )
    replicas.start_all(1)
    started = time.time()
    last_event_at = produce_live(config, seconds=3 * window + 1, partitions=5)
    try:
        last_window = iso_utc(Windowing(window).start_of(last_event_at))
        published = read_windows(config, lambda p: p.last(last_window) is not None, 60)
    finally:
        replicas.stop_all()
    first_window = min(published.records, key=parse_iso)
    first = published.records[first_window][0]
    # Published while traffic still flowed, within grace (+ the emitter's pace) of closing.
    assert parse_iso(first.published_at) < last_event_at
    assert parse_iso(first.published_at) <= parse_iso(first.window_end) + grace + 2
    # After the traffic stops, the last window closes within grace + idle timeout (+ slack).
    closing = published.records[last_window][0]
    assert parse_iso(closing.published_at) <= last_event_at + window + grace + idle + 3
    assert started < parse_iso(first.window_start) + window


def produce_live(config, seconds, partitions, rate=200):
    """Events stamped with the current time, to the first `partitions` partitions only."""
    events = dataset(seed=5, start=0, seconds=1, events=int(seconds * rate))
    live = []
    deadline = time.time() + seconds
    batch = []
    for event in events:
        now = time.time()
        if now >= deadline:
            break
        batch.append(
            event.__class__(**{**_fields(event), "timestamp": datetime.fromtimestamp(now, UTC)})
        )
        if len(batch) >= rate // 10:
            produce(
                config, batch, partition_of=lambda e: zlib.crc32(e.user_id.encode()) % partitions
            )
            live.extend(batch)
            batch = []
            time.sleep(0.1)  # pacing live traffic
    if batch:
        produce(config, batch, partition_of=lambda e: zlib.crc32(e.user_id.encode()) % partitions)
        live.extend(batch)
    return max(e.timestamp.timestamp() for e in live)


def _fields(event):
    return {name: getattr(event, name) for name in event.__struct_fields__}


def test_late_event_amends_a_published_window_as_revision_2(pipeline, tmp_path):
    now = time.time()
    start = int(now // WINDOW_S) * WINDOW_S - 3 * WINDOW_S
    events = dataset(seed=6, start=start, seconds=3 * WINDOW_S, events=6_000)
    config = pipeline.config()
    first_window = iso_utc(start)
    replicas = Replicas(pipeline.environ, tmp_path, ALLOWED_LATENESS_SECONDS="120")
    replicas.start_all(1)
    try:
        produce(config, events)
        read_windows(config, lambda p: p.last(first_window) is not None, 60)
        late = dataset(seed=7, start=start + 1, seconds=5, events=40)
        produce(config, late)
        # The 40 late events may be applied across two emitter ticks: revision 2, maybe 3.
        published = read_windows(
            config,
            lambda p: (last := p.last(first_window)) is not None and last.late_events >= 40,
            60,
        )
    finally:
        replicas.stop_all()
    first, amended = published.records[first_window][0], published.last(first_window)
    assert first.revision == 1 and not first.final and first.late_events == 0
    assert amended.revision >= 2 and amended.late_events == 40
    assert_revisions_well_formed(published)
    assert amended.total_events == first.total_events + 40
    expected = expected_windows(events + late)[first_window]
    assert mismatches(expected, amended) == []


BAD_RECORDS = {
    "not_json": b"this is not json",
    "missing_field": b'{"event_id": "x"}',
    "wrong_type": None,  # filled below from a valid event
    "invalid_value": None,
    "too_large": b'{"pad": "' + b"x" * 999_000 + b'"}',
    "empty": b"",
}


def test_bad_records_go_to_the_dead_letter_topic_with_their_reason(pipeline, tmp_path):
    events = dataset(seed=8, start=PAST, seconds=2 * WINDOW_S, events=5_000)
    valid = encode_event(events[0])
    bad = {
        **BAD_RECORDS,
        "wrong_type": valid.replace(b'"duration_ms":', b'"duration_ms":"x",  "ignored":'),
        "invalid_value": valid.replace(events[0].event_type.encode(), b"scroll", 1),
    }
    config = pipeline.config()
    mixed = list(events[:2500]) + [(b"bad", value) for value in bad.values()] + list(events[2500:])
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(1)
    expected = expected_windows(events)
    try:
        produce(config, mixed)
        published = read_windows(config, all_final(expected))
        dead = read_topic(config, config.dlq_topic, expected=len(bad), timeout_s=30)
    finally:
        replicas.stop_all()
    assert_ground_truth(published, expected)
    reasons = {dict(m.headers())["dlq.reason"].decode(): m for m in dead}
    assert set(reasons) == set(bad)
    for reason, message in reasons.items():
        headers = dict(message.headers())
        # Byte for byte, up to the dead-letter bound (the 999 kB record is cut to it).
        assert (message.value() or b"") == bad[reason][:MAX_DEAD_LETTER_VALUE_BYTES]
        assert headers["dlq.source.topic"].decode() == config.events_topic
        assert int(headers["dlq.source.offset"]) >= 0
    store = StateStore.from_url(
        config.redis_url,
        pipeline.environ["STATE_NAMESPACE"],
        config.events_topic,
        **redis_options(config),
    )
    counted = {}
    for state in store.partition_states(range(pipeline.partitions)).values():
        for reason, count in state.dead_letters.items():
            counted[reason] = counted.get(reason, 0) + count
    assert counted == dict.fromkeys(bad, 1)


def test_redis_wiped_mid_run_is_rebuilt_from_kafka(pipeline, tmp_path):
    events = dataset(seed=9, start=PAST, seconds=6 * WINDOW_S, events=30_000)
    config = pipeline.config()
    expected = expected_windows(events)
    store = StateStore(
        redis.Redis.from_url(config.redis_url),
        pipeline.environ["STATE_NAMESPACE"],
        config.events_topic,
    )
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(2)
    try:
        produce(config, events[:15_000])
        wait_until(
            lambda: applied(store, pipeline.partitions) >= 15_000, "first half never applied"
        )
        assert store.reset() > 0
        produce(config, events[15_000:])
        published = read_windows(
            config,
            lambda p: all(
                (r := p.last(start)) and r.final and r.total_events == want["total_events"]
                for start, want in expected.items()
            ),
            90,
        )
    finally:
        replicas.stop_all()
    for start, want in expected.items():
        assert mismatches(want, published.last(start)) == [], start


def test_redis_losing_its_last_writes_mid_run_costs_nothing(pipeline, tmp_path):
    """Redis comes back from an older copy of its state (AOF fsynced a second late, a
    replica promoted behind its primary) while replicas have a backlog and batches in
    flight: the fences go back with the window state, each replica's next batch is
    refused, and it re-reads from the older fence (dropping what it had fetched past it),
    sending again the HyperLogLog members it had left out."""
    events = dataset(seed=13, start=PAST, seconds=6 * WINDOW_S, events=60_000)
    config = pipeline.config()
    expected = expected_windows(events)
    client = redis.Redis.from_url(config.redis_url)
    store = StateStore(client, pipeline.environ["STATE_NAMESPACE"], config.events_topic)
    pattern = store.keys.namespace_pattern()
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(2)
    try:
        produce(config, events[:10_000])
        wait_until(lambda: applied(store, pipeline.partitions) >= 10_000, "never applied")
        snapshot = _snapshot(client, pattern)
        produce(config, events[10_000:])
        wait_until(lambda: applied(store, pipeline.partitions) >= 15_000, "never applied")
        _roll_back(client, pattern, snapshot)
        published = read_windows(config, all_final(expected), 90)
    finally:
        replicas.stop_all()
        client.close()
    # Held registers are on by default; this run is about them surviving lost writes.
    assert replicas.logs(tail_chars=10**8).count("held registers on") == 2
    assert_ground_truth(published, expected)


# Both run as one script: no batch may land between reading the keys and the last DUMP
# or RESTORE, as no write lands between a restarted Redis' state and its first command.
_SNAPSHOT = """
local taken = {}
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  taken[#taken + 1] = key
  taken[#taken + 1] = redis.call('DUMP', key)
  taken[#taken + 1] = math.max(redis.call('PTTL', key), 0)
end
return taken
"""
_ROLL_BACK = """
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  redis.call('DEL', key)
end
for i = 2, #ARGV, 3 do
  redis.call('RESTORE', ARGV[i], ARGV[i + 2], ARGV[i + 1])
end
return 1
"""


def _snapshot(client, pattern: str) -> list:
    """Every key matching `pattern`, as key, DUMP and PTTL (0: none), at one instant."""
    return client.eval(_SNAPSHOT, 0, pattern)


def _roll_back(client, pattern: str, snapshot: list) -> None:
    """Replace every key matching `pattern` by the snapshot's, at one instant."""
    client.eval(_ROLL_BACK, 0, pattern, *snapshot)
