"""`make api-bench`: the HTTP API under a real load generator (wrk) on loopback.

1. Seed a private namespace with a day of 5-minute windows through the real
   store code: partition batches (StateStore.apply_batch), then each window
   published final as the emitter does (claim_revision, PublishedStore.commit),
   which keeps its record and merged sketches.
2. Start `clickstream api` as a subprocess and run wrk against
   /v1/windows/latest and a 24-hour rollup at 1-hour resolution.
3. Print requests/s and p50/p99 per route, and Redis memory per retained window.
Benchmarks print figures; nothing here asserts a timing.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from load.api_server import ApiServer
from services.common import config as cfg
from services.common.config import Config, Setting, positive_int
from services.common.logging import get_logger
from services.common.window_record import encode_record
from statestore import StateStore, WindowDelta, build_record
from statestore.published import PublishedStore

log = get_logger("api-bench")

SETTINGS = (
    Setting("API_BENCH_WINDOWS", 288, "5-minute windows seeded (288: one day)", parse=positive_int),
    Setting("API_BENCH_EVENTS_PER_WINDOW", 10_000, "events seeded per window", parse=positive_int),
    Setting("API_BENCH_USERS", 50_000, "distinct users the events come from", parse=positive_int),
    Setting("API_BENCH_SECONDS", 10, "wrk duration per route", parse=positive_int),
    Setting("API_BENCH_CONNECTIONS", 8, "wrk connections for /latest", parse=positive_int),
    Setting(
        "API_BENCH_ROLLUP_CONNECTIONS", 4, "wrk connections for the rollup", parse=positive_int
    ),
)

WINDOW_S = 300
PARTITIONS = 6
EVENT_TYPES = ("page_view", "click", "search", "add_to_cart", "purchase")
DEVICES = ("mobile", "desktop", "tablet")
REFERRERS = ("google.com", "direct", "facebook.com", "twitter.com", "newsletter", "bing.com")


def synthetic_delta(
    window_start: int, partition: int, events: int, users: int, rng: random.Random
) -> WindowDelta:
    """One partition's batch for a window; users hash to partitions as user_id keys do."""
    per_partition = max(1, users // PARTITIONS)
    chosen = [
        f"user-{rng.randrange(per_partition) * PARTITIONS + partition}" for _ in range(events)
    ]
    sessions = [f"{user}-s{window_start // 1800}" for user in chosen]
    kinds = rng.choices(EVENT_TYPES, weights=(60, 25, 10, 4, 1), k=events)
    return WindowDelta(
        window_start=window_start,
        events=events,
        duration_ms=sum(rng.randrange(100, 30_000) for _ in range(events)),
        event_types=Counter(kinds),
        devices=Counter(rng.choices(DEVICES, weights=(55, 35, 10), k=events)),
        users=set(chosen),
        sessions=set(sessions),
        cart_sessions={s for s, k in zip(sessions, kinds, strict=True) if k == "add_to_cart"},
        purchase_sessions={s for s, k in zip(sessions, kinds, strict=True) if k == "purchase"},
        pages=Counter(f"/product/{int(rng.paretovariate(1.2)) % 400}" for _ in range(events)),
        referrers=Counter(rng.choices(REFERRERS, k=events)),
    )


def seed_windows(
    store: StateStore,
    published: PublishedStore,
    window_starts: Iterable[int],
    events_per_window: int,
    users: int,
    in_progress: int | None = None,
    seed: int = 7,
) -> None:
    """Apply each window's partition batches and publish it final, as the emitter would;
    `in_progress` gets state but is not published."""
    rng = random.Random(seed)
    store.record_topology(PARTITIONS, WINDOW_S)
    fences = {p: state.fence for p, state in store.partition_states(range(PARTITIONS)).items()}
    starts = list(window_starts) + ([in_progress] if in_progress is not None else [])
    for window_start in starts:
        for partition in range(PARTITIONS):
            delta = synthetic_delta(
                window_start, partition, events_per_window // PARTITIONS, users, rng
            )
            offset = fences[partition] + 1
            store.apply_batch(
                partition, fences[partition], offset, offset, [delta],
                window_start + WINDOW_S - 1, {}, int(time.time() * 1000),
            )  # fmt: skip
            fences[partition] = offset
        if window_start == in_progress:
            continue
        totals = store.read_window(window_start, range(PARTITIONS))
        record = build_record(totals, WINDOW_S, revision=1, final=True, published_at_s=time.time())
        store.claim_revision(window_start, 0, encode_record(record), totals.events, True)
        published.commit(window_start, 1)
        published.keep_due_sketches(range(PARTITIONS))


def retained_bytes_per_window(store: StateStore, window_starts: list[int]) -> float:
    """Redis MEMORY USAGE of what a final window keeps: its published hash and four sketches."""
    pipe = store.redis.pipeline(transaction=False)
    for window_start in window_starts:
        for key in (store.keys.published(window_start), *store.keys.rollup_sketches(window_start)):
            pipe.memory_usage(key, samples=0)
    return sum(size or 0 for size in pipe.execute()) / len(window_starts)


@dataclass(frozen=True)
class WrkFigures:
    route: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: str


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNIT_MS[unit]


def run_wrk(url: str, route: str, connections: int, seconds: int, headers=()) -> WrkFigures:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(
        [*command, url + route], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", output, re.MULTILINE))
    errors = re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: .*)", output)
    return WrkFigures(
        route,
        connections,
        float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        _ms(percentiles["50"]),
        _ms(percentiles["99"]),
        "; ".join(errors) or "none",
    )


def run(config: Config) -> int:
    if shutil.which("wrk") is None:
        log.error("wrk is not installed (Debian: apt-get install wrk)")
        return 2
    namespace, topic = f"api-bench-{uuid.uuid4().hex[:8]}", "bench-events"
    store = StateStore.from_url(config.redis_url, namespace, topic, ttl_s=3600)
    published = PublishedStore(store, retention_s=7 * 86400)
    now = int(time.time())
    current = now // WINDOW_S * WINDOW_S
    starts = [current - WINDOW_S * (i + 1) for i in range(config.api_bench_windows)][::-1]
    began = time.monotonic()
    seed_windows(
        store,
        published,
        starts,
        config.api_bench_events_per_window,
        config.api_bench_users,
        current,
    )
    log.info("seeded", windows=len(starts), seconds=round(time.monotonic() - began, 1))
    per_window = retained_bytes_per_window(store, starts)
    environ = {"REDIS_URL": config.redis_url, "STATE_NAMESPACE": namespace, "EVENTS_TOPIC": topic}
    with tempfile.TemporaryDirectory() as log_dir:
        server = ApiServer(environ, Path(log_dir) / "api.log").start(probe="/readyz")
        try:
            day = f"/v1/rollups?resolution=1h&from={starts[0]}&to={starts[-1] + WINDOW_S}"
            first = time.perf_counter()
            status, body = server.get(day)
            cold_ms = (time.perf_counter() - first) * 1000
            assert status == 200 and sum(b["windows"] for b in body["buckets"]) >= len(starts), body
            figures = [
                run_wrk(server.url, "/v1/windows/latest", config.api_bench_connections,
                        config.api_bench_seconds),
                run_wrk(server.url, day, config.api_bench_rollup_connections,
                        config.api_bench_seconds),
            ]  # fmt: skip
        finally:
            server.stop()
            store.reset()
    print(f"seeded {len(starts)} windows x {config.api_bench_events_per_window} events")
    print(f"retained per final window: {per_window / 1024:.1f} KiB (published hash + 4 sketches)")
    print(f"24h rollup, first (uncached) request: {cold_ms:.1f} ms")
    print(f"{'route':<48} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for figure in figures:
        route = figure.route if len(figure.route) <= 48 else "/v1/rollups?resolution=1h (24 h)"
        print(
            f"{route:<48} {figure.connections:>5} {figure.requests_per_s:>9.0f} "
            f"{figure.p50_ms:>8.2f} {figure.p99_ms:>8.2f}  {figure.errors}"
        )
    return 0


def main() -> int:
    import argparse

    from services.common.logging import configure

    settings = cfg.unique_settings(cfg.SHARED, SETTINGS)
    parser = argparse.ArgumentParser(prog="api-bench", description=__doc__.splitlines()[0])
    cfg.add_arguments(parser, settings)
    config = cfg.load(settings, parser.parse_args())
    configure(config.log_level, config.log_format)
    return run(config)


if __name__ == "__main__":
    raise SystemExit(main())
