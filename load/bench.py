"""`clickstream bench`: the pipeline against its limits, one table from one run.

Every figure comes from the same run on the same machine, against the local
broker and Redis: a bare consumer (the ceiling), the processor with one and
two replicas end to end into Redis, window publish delay, takeover after
SIGKILL, and processor peak RSS by number of distinct users. Benchmarks print
figures; nothing here asserts a timing.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from load import dataset, publish_delay, takeover
from load.bench_parts import Figure, percentile, print_table
from load.bench_redis import redis_cost_rows
from load.dataset import Record
from load.fleet import ProcessorFleet, processor_env
from load.replay import replay
from load.sizing import hot_slot_figures, redis_cpu_seconds
from services.common.config import Config, Setting, parse_bool, positive_int, redis_options
from services.common.kafka import make_admin, make_consumer
from services.common.logging import get_logger
from services.common.schema import encode_event
from services.common.topics import PARTITION_SETTINGS, TopicSpec, ensure_topics
from services.processor.settings import FETCH_SETTINGS
from services.producer.generator import TrafficGenerator
from statestore import StateStore

log = get_logger("bench")

SETTINGS = (
    Setting("BENCH_EVENTS", 1_000_000, "events in the throughput dataset", parse=positive_int),
    Setting("BENCH_USERS", 100_000, "distinct users in the throughput dataset", parse=positive_int),
    Setting(
        "BENCH_LIVE_SECONDS",
        20,
        "seconds of live traffic for delay and takeover",
        parse=positive_int,
    ),
    Setting("BENCH_LIVE_RATE", 5000, "events/s of live traffic", parse=positive_int),
    Setting("BENCH_RSS_USERS", "100,100000,1000000", "user counts for the RSS runs"),
    Setting("BENCH_REPLICAS", "1,2,3", "processor replica counts of the throughput runs"),
    Setting(
        "BENCH_SUITE",
        "all",
        "all; throughput (replica scaling, Redis CPU and hot slot); takeover (kill-to-processing "
        "per group membership mode)",
        choices=("all", "throughput", "takeover"),
        aliases=("--suite",),
    ),
    Setting("BENCH_TAKEOVER_KILLS", 3, "SIGKILLs per mode (suite takeover)", parse=positive_int),
    Setting("BENCH_TAKEOVER_MODES", ",".join(takeover.MODES), "modes the takeover suite measures"),
    Setting(
        "BENCH_HOT_SLOT",
        True,
        "count Redis commands per hash tag (MONITOR) on a private redis-server",
        parse=parse_bool,
    ),
    *PARTITION_SETTINGS,
)

DATASET_START = 1_767_225_600  # 2026-01-01T00:00:00Z
DATASET_SPAN_S = 600  # two default windows: fold and apply cross a window boundary
RSS_MIN_EVENTS = 300_000  # past start-up and folding full batches, whatever the users
# Distinct event shapes the throughput dataset cycles through (users and times vary per
# event): enough variety for decode and fold, cheap to generate for a million events.
TEMPLATE_EVENTS = 50_000

BARE_CONSUME_BATCH = 5000  # as the processor's default BATCH_MAX_RECORDS

# How often the end-to-end rate reads the fences: the rate is over a run of seconds.
STATE_POLL_S = 0.02


@dataclass
class Throughput:
    events_per_s: float
    rss_mb: float
    redis_cpu_s: float  # used_cpu_sys + used_cpu_user over the primaries, during the run
    processor_cpu_s: float  # user + system CPU of every replica, start-up included


class Bench:
    def __init__(self, config: Config):
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-"))
        self.admin = make_admin(config)
        self.figures: list[Figure] = []
        self.partitions = range(config.events_partitions)

    # -- topics and data --------------------------------------------------------

    def topic(self, name: str, partitions: int | None = None) -> str:
        topic = f"bench-{self.run_id}-{name}"
        count = partitions or self.config.events_partitions
        ensure_topics(self.admin, [TopicSpec(topic, count)], replication_factor=1)
        return topic

    def sink_topics(self) -> None:
        self.metrics_topic = self.topic("metrics", self.config.metrics_partitions)
        self.dlq_topic = self.topic("dlq", self.config.dlq_partitions)

    def applied(self, store: StateStore) -> int:
        """Records whose effect is in Redis, over every partition (fence + 1 each)."""
        return sum(s.fence + 1 for s in store.partition_states(self.partitions).values())

    def dataset(self, events: int, users: int, span_s: float) -> Path:
        """A dataset file (load.dataset format) cycling through `users` distinct users."""
        generator = TrafficGenerator(users=100, seed=7)
        templates = [
            generator.next_event(DATASET_START) for _ in range(min(events, TEMPLATE_EVENTS))
        ]
        step = span_s / events
        records = []
        replace = msgspec.structs.replace
        for index in range(events):
            user = f"user_{index % users}"
            event = replace(
                templates[index % len(templates)],
                event_id=f"bench-{index}",
                user_id=user,
                session_id=f"sess_{user}_{index // (users * 3) if users else 0}",
                timestamp=datetime.fromtimestamp(DATASET_START + index * step, UTC),
            )
            records.append(Record(user.encode(), encode_event(event)))
        path = self.log_dir / f"dataset-{events}-{users}.jsonl.gz"
        dataset.write(path, records)
        return path

    def load(self, topic: str, path: Path) -> float:
        """Replay a dataset file at full speed (clickstream load replay); returns events/s."""
        result = replay(self.config, path, topic)
        if not result.ok:
            raise RuntimeError(f"replay into {topic} failed: {result.summary()}")
        return result.events_per_s

    # -- throughput -----------------------------------------------------------

    def bare_consumer(self, topic: str, expected: int) -> float:
        """Events/s of a consumer that only reads, with the processor's fetch settings."""
        consumer = make_consumer(self.config, f"bench-bare-{self.run_id}", **FETCH_SETTINGS)
        consumer.subscribe([topic])
        seen, started = 0, None
        while seen < expected:
            messages = consumer.consume(BARE_CONSUME_BATCH, 1.0)
            if messages and started is None:
                started = time.perf_counter()
            for message in messages:
                if message.error() is None:
                    message.value()
                    seen += 1
        elapsed = time.perf_counter() - started
        consumer.close()
        return expected / elapsed

    def processor_env(
        self, topic: str, namespace: str, base: Config | None = None, **extra: str
    ) -> dict[str, str]:
        run = (base or self.config).replace(
            events_topic=topic, metrics_topic=self.metrics_topic, dlq_topic=self.dlq_topic
        )
        return processor_env(run, STATE_NAMESPACE=namespace, CONSUMER_GROUP=namespace, **extra)

    def processor_rate(
        self, topic: str, expected: int, replicas: int, run: Config | None = None
    ) -> Throughput:
        """Events/s end to end into Redis (from the first applied batch to the last), the
        first replica's peak RSS and the Redis CPU seconds spent meanwhile; against the
        Redis of `run` (default: the bench's own configuration)."""
        namespace = f"bench-{self.run_id}-{uuid.uuid4().hex[:6]}"
        run = run or self.config
        store = StateStore.from_url(run.redis_url, namespace, topic, **redis_options(run))
        environ = self.processor_env(topic, namespace, base=run)
        fleet = ProcessorFleet(environ, self.log_dir)
        cpu_before = redis_cpu_seconds(store.redis)
        fleet.start_all(replicas)
        try:
            started = applied_at_start = None
            while True:
                applied = self.applied(store)
                if applied and started is None:
                    started, applied_at_start = time.perf_counter(), applied
                if applied >= expected:
                    elapsed = time.perf_counter() - started
                    break
                time.sleep(STATE_POLL_S)
            redis_cpu_s = redis_cpu_seconds(store.redis) - cpu_before
            processor_cpu_s = fleet.cpu_seconds()
            rss = fleet.peak_rss_mb(0)
        finally:
            fleet.stop_all()
            store.reset()
        return Throughput(
            (expected - applied_at_start) / elapsed, rss, redis_cpu_s, processor_cpu_s
        )

    # -- latency ----------------------------------------------------------------

    # -- the run ----------------------------------------------------------------

    def run(self) -> list[Figure]:
        config = self.config
        self.sink_topics()
        if config.bench_suite in ("all", "throughput"):
            self.throughput()
        if config.bench_suite == "all":
            self.latency()
        if config.bench_suite == "takeover":
            for mode in config.bench_takeover_modes.split(","):
                step("takeover", mode)
                self.add_takeover(takeover.measure(self, mode, config.bench_takeover_kills))
        if config.bench_suite == "all":
            for user_count in (int(n) for n in config.bench_rss_users.split(",")):
                self.peak_rss(user_count)
        return self.figures

    def throughput(self) -> None:
        """Replay, the bare consumer, then the processor with each replica count."""
        events, users = self.config.bench_events, self.config.bench_users
        step("dataset", f"{events:,} events, {users:,} users")
        path = self.dataset(events, users, span_s=DATASET_SPAN_S)
        topic = self.topic("events")
        self.add(
            "replay (clickstream load), full speed",
            self.load(topic, path),
            "events/s",
            ">= 300,000",
        )
        step("bare consumer")
        bare = self.bare_consumer(topic, events)
        self.add("bare consumer (ceiling)", bare, "events/s")
        for replicas in (int(n) for n in self.config.bench_replicas.split(",")):
            step(f"processor x{replicas}")
            label = "1 replica" if replicas == 1 else f"{replicas} replicas"
            run = self.processor_rate(topic, events, replicas)
            note = f"{run.events_per_s / bare:.2f}x bare" + (
                " (target >= 0.3x)" if replicas == 1 else ""
            )
            target = ">= 400,000" if replicas == 1 else ""
            self.add(f"processor, {label}", run.events_per_s, "events/s", target, note)
            self.add(
                f"processor CPU per million events, {label}",
                run.processor_cpu_s / events * 1_000_000,
                "s",
                note=f"{events / run.processor_cpu_s:,.0f} events per CPU-second, start-up "
                "included",
            )
            self.add(
                f"Redis CPU per million events, {label}",
                run.redis_cpu_s / events * 1_000_000,
                "s",
                note=f"{run.redis_cpu_s:.2f} s over {events:,} events, summed over primaries",
            )
        step("processor x1, private Redis")
        redis_cost_rows(self, topic, events, bare)
        if self.config.bench_hot_slot:
            step("hot slot")
            self.figures += hot_slot_figures(self, topic, events)

    def latency(self) -> None:
        config = self.config
        step("publish delay")
        delays = publish_delay.measure(self, config.bench_live_seconds, config.bench_live_rate)
        if delays:
            self.add("publish delay p50", statistics.median(delays), "s")
            self.add(
                "publish delay p99",
                percentile(delays, 99),
                "s",
                "<= 1 s",
                f"{len(delays)} windows",
            )
        step("takeover")
        run = takeover.measure(self, "classic", 1)
        self.add("takeover after SIGKILL", run.seconds[0], "s", "<= 10 s", "classic protocol")

    def add_takeover(self, run: takeover.TakeoverRun) -> None:
        timed = [s for s in run.seconds if s == s]  # nan: a takeover that timed out
        note = f"{len(timed)}/{len(run.seconds)} kills: " + ", ".join(
            f"{s:.2f}" for s in run.seconds
        )
        if timed:
            self.add(f"takeover median, {run.mode}", statistics.median(timed), "s", note=note)
            self.add(f"takeover max, {run.mode}", max(timed), "s")
        else:
            self.add(f"takeover, {run.mode}", float("nan"), "s", note=note)

    def peak_rss(self, user_count: int) -> None:
        step("peak RSS", f"{user_count:,} users")
        count = max(RSS_MIN_EVENTS, user_count)
        rss_topic = self.topic(f"rss-{user_count}")
        self.load(rss_topic, self.dataset(count, user_count, span_s=DATASET_SPAN_S))
        rss = self.processor_rate(rss_topic, count, 1).rss_mb
        self.add(
            f"processor peak RSS, {user_count:,} users",
            rss,
            "MB",
            "<= 150 MB",
            f"{count:,} events",
        )

    def add(self, name: str, value: float, unit: str, target: str = "", note: str = "") -> None:
        self.figures.append(Figure(name, value, unit, target, note))
        log.info("figure", name=name, value=round(value, 3), unit=unit)

    def cleanup(self) -> None:
        topics = [
            t
            for t in self.admin.list_topics(timeout=10).topics
            if t.startswith(f"bench-{self.run_id}-")
        ]
        if topics:
            for future in self.admin.delete_topics(topics).values():
                future.result()


def step(name: str, detail: str = "") -> None:
    log.info("bench step", step=name, detail=detail)


def run(config: Config, *, on_figures: Callable[[list[Figure]], None] = print_table) -> int:
    bench = Bench(config)
    try:
        figures = bench.run()
    finally:
        bench.cleanup()
    on_figures(figures)
    return 0
