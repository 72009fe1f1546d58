"""Redis-side figures for sizing: CPU seconds spent by Redis, and how its commands spread
over the key layout's hash tags (one per source partition, one for emission).

Both work on a single Redis and on a Redis Cluster client (redis-py's RedisCluster):
CPU is summed over the primaries, since replicas only replay what primaries did.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

import redis

from load.bench_parts import Figure
from load.redis_server import RedisServer


def redis_cpu_seconds(client) -> float:
    """used_cpu_sys + used_cpu_user of the server, summed over every primary of a cluster."""
    if hasattr(client, "get_primaries"):
        per_node = client.info("cpu", target_nodes=client.PRIMARIES)
        # One primary answers with its own dict, several with {node name: dict}.
        answers = [per_node] if "used_cpu_sys" in per_node else list(per_node.values())
    else:
        answers = [client.info("cpu")]
    return sum(float(info["used_cpu_sys"]) + float(info["used_cpu_user"]) for info in answers)


# A MONITOR line: `<time> [<db> <client or "lua">] "command" "arg" ...`. The hash tag is
# the part of a key between the first "{" and the next "}", as Redis Cluster hashes it.
_MONITOR_LINE = re.compile(r"^[0-9.]+ \[\d+ ([^\]]+)\] (.*)$")
_HASH_TAG = re.compile(r"\{([^}]*)\}")


def hash_tag_of(monitor_line: str, marker: str) -> str | None:
    """The hash tag of the first key in a MONITOR line, if it contains `marker`."""
    match = _MONITOR_LINE.match(monitor_line)
    if match is None or marker not in match.group(2):
        return None
    tag = _HASH_TAG.search(match.group(2))
    return tag.group(1) if tag else None


@dataclass
class SlotLoad:
    """Commands per hash tag (top-level and inside scripts) over a measured span."""

    seconds: float
    by_tag: Counter

    def rate(self, tag_suffix: str) -> float:
        return sum(n for tag, n in self.by_tag.items() if tag.endswith(tag_suffix)) / self.seconds

    def busiest(self, excluding_suffix: str) -> tuple[str, float]:
        others = [(n, tag) for tag, n in self.by_tag.items() if not tag.endswith(excluding_suffix)]
        count, tag = max(others, default=(0, ""))
        return tag, count / self.seconds


class CommandCounter:
    """Counts the commands a Redis executes per hash tag of one namespace, via MONITOR.

    MONITOR slows a server noticeably: run it on a private Redis, never the shared one.
    """

    def __init__(self, url: str, namespace: str):
        """Counts keys whose hash tag starts with `namespace` (a prefix is enough)."""
        self.url = url
        self.marker = "{" + namespace
        self.by_tag: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = self._stopped = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> SlotLoad:
        self._stop.set()
        self._stopped = time.monotonic()
        # Nudge the MONITOR connection so its blocking read returns.
        redis.Redis.from_url(self.url).ping()
        self._thread.join(5)
        return SlotLoad(self._stopped - self._started, Counter(self.by_tag))

    def _run(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:
            connection = monitor.connection
            while not self._stop.is_set():
                line = connection.read_response()
                if isinstance(line, bytes):
                    line = line.decode(errors="replace")
                tag = hash_tag_of(line, self.marker)
                if tag is not None:
                    self.by_tag[tag] += 1


def hot_slot_figures(bench, topic: str, events: int) -> list[Figure]:
    """Commands per hash tag while 2 replicas process `topic`, on a private Redis.

    The emission tag (leases, revisions, merges through scratch keys) is the one slot
    every replica's emitter shares; the partition tags spread with the partitions.
    """
    server = RedisServer(bench.log_dir / "hot-slot-redis")
    server.start()
    namespace_marker = f"bench-{bench.run_id}-"
    counter = CommandCounter(server.url, namespace_marker)
    try:
        counter.start()
        run = bench.processor_rate(topic, events, 2, single_redis(bench.config, server.url))
        load = counter.stop()
    finally:
        server.stop()
    emission = load.rate(":emit")
    tag, busiest = load.busiest(":emit")
    total = sum(load.by_tag.values()) / load.seconds
    return [
        Figure(
            "Redis commands/s, emission slot",
            emission,
            "cmd/s",
            note=f"{emission / total:.1%} of {total:,.0f} cmd/s; 2 replicas under MONITOR, "
            f"{run.events_per_s:,.0f} events/s",
        ),
        Figure(
            "Redis commands/s, busiest partition slot",
            busiest,
            "cmd/s",
            note=f"{tag.rsplit(':', 1)[-1]}; {busiest / total:.1%} of all",
        ),
    ]


def single_redis(config, url: str):
    """`config` pointed at a private, unauthenticated single Redis, whatever REDIS_* said
    (a cluster or credentials included)."""
    changes = {
        "redis_url": url,
        "redis_username": "",
        "redis_password": "",
        "redis_tls_ca_file": "",
    }
    if "REDIS_CLUSTER" in config.masked():
        changes["redis_cluster"] = False
    return config.replace(**changes)
