"""`clickstream bench`'s Redis cost rows: Redis server CPU seconds per million events.

The shared Redis also serves other work, so the figure comes from a private
redis-server (load.redis_server, the project's own settings, AOF included)
that only this run's processor and the bench's own fence polling touch: the
server's `used_cpu_sys + used_cpu_user` (INFO cpu, all its threads) before and
after one replica processes the throughput dataset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import redis

from load.redis_server import RedisServer
from load.sizing import single_redis

EVENTS_PER_FIGURE = 1_000_000


def redis_cpu_seconds(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        cpu = client.info("cpu")
    finally:
        client.close()
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def redis_cost_rows(bench, topic: str, events: int, bare: float) -> None:
    """Add the private-Redis rows to `bench` (a load.bench.Bench): the processor's rate
    with a Redis of its own, and that Redis' CPU seconds per million events."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix=f"bench-{bench.run_id}-redis-")))
    server.start()
    try:
        before = redis_cpu_seconds(server.url)
        private = single_redis(bench.config, server.url)
        rate = bench.processor_rate(topic, events, 1, private).events_per_s
        used = redis_cpu_seconds(server.url) - before
    finally:
        server.stop()
    bench.add(
        "processor, 1 replica, private Redis",
        rate,
        "events/s",
        ">= 400,000",
        f"{rate / bare:.2f}x bare (target >= 0.3x)",
    )
    bench.add(
        "Redis CPU per million events",
        used * EVENTS_PER_FIGURE / events,
        "s",
        "<= 1.11 s (half of 2.22)",
        "private redis-server, 1 replica",
    )
