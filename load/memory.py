"""`clickstream memory`: Redis memory per window and per million events, measured.

Generates realistic traffic (the producer's generator), splits it over the
events topic's partitions (EVENTS_PARTITIONS, 6) by user, folds it in batches and applies it through
the real StateStore into a fresh namespace of the configured Redis, as the
processor does. Then it sums `MEMORY USAGE` (exact: SAMPLES 0) over the
namespace's keys and prints:
- per window and partition: a window's working keys (counters hash, HLLs, zsets);
- per window merged: the same state merged into one copy (one hash, one HLL per
  unique count, one zset per top list), what a later read would keep after final;
- per million events: everything the namespace holds, scaled.
The namespace is deleted afterwards. No broker is involved.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterator

import redis

from services.common import config as cfg
from services.common.config import Config, Setting, positive_int, redis_options
from services.common.schema import ClickEvent
from services.common.topics import EVENTS_PARTITIONS
from services.common.windowing import Windowing
from services.processor.fold import fold
from services.producer.generator import TrafficGenerator
from statestore import StateStore
from statestore.metrics import BREAKDOWNS, COUNTERS, HLLS, SORTED_SETS

SETTINGS = (
    cfg.WINDOW_SECONDS,
    EVENTS_PARTITIONS,
    Setting("MEMORY_EVENTS", 1_000_000, "events to apply", parse=positive_int),
    Setting("MEMORY_RATE", 1000, "events per second of event time", parse=positive_int),
    Setting("MEMORY_USERS", 10_000, "distinct users in the traffic", parse=positive_int),
)

BATCH_EVENTS = 1000  # per partition batch: a 5,000-record poll over 6 partitions, rounded up
START_S = 1_767_225_600  # 2026-01-01T00:00:00Z: a window start for any window size
TOPIC = "memory-events"


def run(config: Config) -> int:
    store = StateStore.from_url(
        config.redis_url, f"memory-{uuid.uuid4().hex[:8]}", TOPIC, **redis_options(config)
    )
    try:
        windows = _apply(store, config)
        _report(store, config, windows)
    finally:
        store.reset()
    return 0


def _traffic(config: Config) -> Iterator[ClickEvent]:
    generator = TrafficGenerator(users=config.memory_users, seed=7)
    step_s = 1 / config.memory_rate
    for n in range(config.memory_events):
        yield generator.next_event(START_S + n * step_s)


def _apply(store: StateStore, config: Config) -> list[int]:
    """Apply the traffic in per-partition batches; returns the window starts written."""
    windowing = Windowing(config.window_seconds, 0, 3600)
    pending: dict[int, list[ClickEvent]] = defaultdict(list)
    partitions = config.events_partitions
    fences = dict.fromkeys(range(partitions), -1)
    watermarks: dict[int, float | None] = dict.fromkeys(range(partitions))
    windows: set[int] = set()

    def flush(partition: int) -> None:
        events = pending.pop(partition, [])
        if not events:
            return
        folded = fold(events, watermarks[partition], -1, windowing)
        first = fences[partition] + 1
        last = first + len(events) - 1
        store.apply_batch(
            partition, fences[partition], first, last, folded.deltas, folded.watermark_s, {}, 0
        )
        fences[partition], watermarks[partition] = last, folded.watermark_s
        windows.update(delta.window_start for delta in folded.deltas)

    for event in _traffic(config):
        partition = zlib.crc32(event.user_id.encode()) % partitions
        pending[partition].append(event)
        if len(pending[partition]) >= BATCH_EVENTS:
            flush(partition)
    for partition in range(partitions):
        flush(partition)
    return sorted(windows)


def _usage(client: redis.Redis, keys: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(used or 0 for used in pipe.execute())


def _merged_copy_bytes(store: StateStore, window_start: int, partition_count: int) -> int:
    """Memory of one merged copy of a window, built in scratch keys and deleted again."""
    client, partitions = store.redis, range(partition_count)
    totals = store.read_window(window_start, partitions)
    token = secrets.token_hex(6)
    names = (store.keys.scratch(token, index) for index in itertools.count())
    counters = next(names)
    fields = {metric.field: getattr(totals, metric.name) for metric in COUNTERS}
    for metric in BREAKDOWNS:
        for name, count in getattr(totals, metric.name).items():
            fields[f"{metric.field}:{name}"] = count
    pipe = client.pipeline(transaction=False)
    pipe.hset(counters, mapping=fields)
    merged, restored = [counters], []
    for position in range(1, len(HLLS) + 1):
        target, sources = next(names), []
        for partition in partitions:
            blob = client.dump(store.keys.window(partition, window_start)[position])
            if blob:
                sources.append(next(names))
                pipe.restore(sources[-1], 60_000, blob, replace=True)
        # Raw: a cluster pipeline refuses pfmerge() even on keys of one slot.
        pipe.execute_command("PFMERGE", target, *sources)
        merged.append(target)
        restored += sources
    for metric in SORTED_SETS:
        counts = getattr(totals, metric.name)
        if counts:
            merged.append(next(names))
            pipe.zadd(merged[-1], dict(counts))
    pipe.execute()
    try:
        return _usage(client, merged)
    finally:
        client.delete(*merged, *restored)


def _report(store: StateStore, config: Config, windows: list[int]) -> None:
    client = store.redis
    per_partition = [
        _usage(client, list(store.keys.window(partition, window_start)))
        for window_start in windows
        for partition in range(config.events_partitions)
    ]
    everything = list(client.scan_iter(match=store.keys.namespace_pattern(), count=1000))
    total = _usage(client, everything)
    # A full window (the first and last may be partial when the traffic starts mid-window).
    full = windows[len(windows) // 2]
    merged = _merged_copy_bytes(store, full, config.events_partitions)
    events_per_window = config.window_seconds * config.memory_rate
    print(
        f"{config.memory_events:,} events, {config.memory_rate:,}/s of event time, "
        f"{config.memory_users:,} users, {config.window_seconds}s windows "
        f"({events_per_window:,} events per full window), {len(windows)} windows, "
        f"{config.events_partitions} partitions"
    )
    print(f"per window and partition: {max(per_partition) / 1024:,.1f} KiB at most, ", end="")
    print(f"{sum(per_partition) / len(per_partition) / 1024:,.1f} KiB on average")
    print(f"per window, all partitions: {sum(per_partition) / len(windows) / 1024:,.1f} KiB")
    print(f"per window, one merged copy: {merged / 1024:,.1f} KiB")
    print(
        f"namespace total: {total / 1024 / 1024:,.2f} MiB in {len(everything)} keys, "
        f"{total / config.memory_events * 1_000_000 / 1024 / 1024:,.2f} MiB per million events"
    )
