"""`clickstream bench`: the pipeline against its limits, one table from one run.

Every figure comes from the same run on the same machine, against the local
broker and Redis: a bare consumer (the ceiling), the processor with one and
two replicas end to end into Redis, window publish delay, takeover after
SIGKILL, and processor peak RSS by number of distinct users. Benchmarks print
figures; nothing here asserts a timing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from load import dataset
from load.bench_parts import Figure, live_traffic, percentile, print_table
from load.bench_redis import redis_cost_rows
from load.dataset import Record
from load.fleet import ProcessorFleet, processor_env
from load.replay import replay
from services.common.config import Config, Setting, positive_int, redis_options
from services.common.kafka import make_admin, make_consumer
from services.common.logging import get_logger
from services.common.schema import encode_event
from services.common.topics import (
    DLQ_PARTITIONS,
    EVENTS_PARTITIONS,
    METRICS_PARTITIONS,
    TopicSpec,
    ensure_topics,
)
from services.common.window_record import decode_record, parse_iso
from services.common.windowing import Windowing
from services.processor.settings import FETCH_SETTINGS
from services.processor.watermark import stream_time
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
)

DATASET_START = 1_767_225_600  # 2026-01-01T00:00:00Z
EVENT_PARTITION_RANGE = range(EVENTS_PARTITIONS)
DATASET_SPAN_S = 600  # two default windows: fold and apply cross a window boundary
RSS_MIN_EVENTS = 300_000  # past start-up and folding full batches, whatever the users
# Distinct event shapes the throughput dataset cycles through (users and times vary per
# event): enough variety for decode and fold, cheap to generate for a million events.
TEMPLATE_EVENTS = 50_000

# Publish delay: short windows, so a 20 s run sees about ten of them close.
DELAY_WINDOW_S, DELAY_GRACE_S = 2, 1
DELAY_IDLE_PARTITION_S = 5  # above any gap in live traffic: no partition goes idle
# Closability is timed to 5 ms, well below the delays measured (p50 0.18 s, p99 0.27 s).
WATERMARK_POLL_S = 0.005
# Traffic starts once the replica has joined its group, or the first windows would
# measure the join instead of the publish path.
JOIN_BEFORE_TRAFFIC_S = 3
WATCHER_JOIN_TIMEOUT_S = 5
BARE_CONSUME_BATCH = 5000  # as the processor's default BATCH_MAX_RECORDS

# How often the end-to-end rate and the takeover read the fences: the takeover figure
# (6.8 s measured) is timed to 50 ms, the rate over a run of seconds.
STATE_POLL_S = 0.02
TAKEOVER_POLL_S = 0.05


class Bench:
    def __init__(self, config: Config):
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-"))
        self.admin = make_admin(config)
        self.figures: list[Figure] = []

    # -- topics and data --------------------------------------------------------

    def topic(self, name: str, partitions: int = EVENTS_PARTITIONS) -> str:
        topic = f"bench-{self.run_id}-{name}"
        ensure_topics(self.admin, [TopicSpec(topic, partitions)], replication_factor=1)
        return topic

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

    def processor_env(self, topic: str, namespace: str, **extra: str) -> dict[str, str]:
        run = self.config.replace(
            events_topic=topic, metrics_topic=self.metrics_topic, dlq_topic=self.dlq_topic
        )
        return processor_env(run, STATE_NAMESPACE=namespace, CONSUMER_GROUP=namespace, **extra)

    def processor_rate(self, topic: str, expected: int, replicas: int) -> tuple[float, float]:
        """Events/s end to end into Redis (from the first applied batch to the last) and
        the first replica's peak RSS in MB."""
        namespace = f"bench-{self.run_id}-{uuid.uuid4().hex[:6]}"
        store = StateStore.from_url(
            self.config.redis_url, namespace, topic, **redis_options(self.config)
        )
        fleet = ProcessorFleet(self.processor_env(topic, namespace), self.log_dir)
        fleet.start_all(replicas)
        try:
            started = applied_at_start = None
            while True:
                applied = sum(
                    s.fence + 1 for s in store.partition_states(EVENT_PARTITION_RANGE).values()
                )
                if applied and started is None:
                    started, applied_at_start = time.perf_counter(), applied
                if applied >= expected:
                    elapsed = time.perf_counter() - started
                    break
                time.sleep(STATE_POLL_S)
            rss = fleet.peak_rss_mb(0)
        finally:
            fleet.stop_all()
            store.reset()
        return (expected - applied_at_start) / elapsed, rss

    # -- latency ----------------------------------------------------------------

    def publish_delay(self, seconds: int, rate: int) -> list[float]:
        """Seconds from each window becoming closable to its first record on the topic."""
        window, grace = DELAY_WINDOW_S, DELAY_GRACE_S
        windowing = Windowing(window, grace)
        topic = self.topic(f"live-{uuid.uuid4().hex[:4]}")
        namespace = f"bench-{self.run_id}-delay"
        store = StateStore.from_url(
            self.config.redis_url, namespace, topic, **redis_options(self.config)
        )
        fleet = ProcessorFleet(
            self.processor_env(
                topic,
                namespace,
                WINDOW_SECONDS=str(window),
                GRACE_SECONDS=str(grace),
                IDLE_PARTITION_SECONDS=DELAY_IDLE_PARTITION_S,
            ),
            self.log_dir,
        )
        closable: dict[float, float] = {}
        received: dict[float, float] = {}
        stop = threading.Event()

        fleet.start_all(1)
        watchers = [
            threading.Thread(
                target=_observe_closable, args=(store, windowing, closable, stop), daemon=True
            ),
            threading.Thread(
                target=self._observe_first_revisions, args=(received, stop), daemon=True
            ),
        ]
        for watcher in watchers:
            watcher.start()
        try:
            time.sleep(JOIN_BEFORE_TRAFFIC_S)
            live_traffic(self.config, topic, seconds, rate, stop)
            # The last window closes after its grace; one more second for its record.
            time.sleep(window + grace + 1)
        finally:
            stop.set()
            for watcher in watchers:
                watcher.join(WATCHER_JOIN_TIMEOUT_S)
            fleet.stop_all()
            store.reset()
        # The first window may have opened before traffic did; skip it.
        starts = sorted(start for start in received if start in closable)[1:]
        return [received[start] - closable[start] for start in starts]

    def _observe_first_revisions(self, received: dict[float, float], stop: threading.Event) -> None:
        """When each window's revision 1 reaches a reader of the metrics topic."""
        consumer = make_consumer(
            self.config,
            f"bench-delay-{self.run_id}",
            **{"fetch.wait.max.ms": 5, "auto.offset.reset": "earliest"},
        )
        consumer.subscribe([self.metrics_topic])
        while not stop.is_set():
            for message in consumer.consume(100, 0.05):
                if message.error() is None:
                    record = decode_record(message.value())
                    if record.revision == 1:
                        received.setdefault(parse_iso(record.window_start), time.time())
        consumer.close()

    def takeover(self, seconds: int, rate: int) -> float:
        """Seconds from SIGKILL of a replica until all its partitions are applied again."""
        topic = self.topic(f"takeover-{uuid.uuid4().hex[:4]}")
        namespace = f"bench-{self.run_id}-takeover"
        store = StateStore.from_url(
            self.config.redis_url, namespace, topic, **redis_options(self.config)
        )
        fleet = ProcessorFleet(self.processor_env(topic, namespace), self.log_dir)
        stop = threading.Event()
        traffic = threading.Thread(
            target=live_traffic, args=(self.config, topic, seconds, rate, stop)
        )
        fleet.start_all(2)
        traffic.start()
        try:
            victim = fleet.replica_id(0)
            deadline = time.time() + seconds
            while time.time() < deadline:
                states = store.partition_states(EVENT_PARTITION_RANGE)
                owned = [p for p, s in states.items() if s.owner == victim]
                if owned and all(s.owner for s in states.values()):
                    break
                time.sleep(TAKEOVER_POLL_S)
            killed_at_ms = int(time.time() * 1000)
            fleet.kill(0)
            while time.time() < deadline:
                states = store.partition_states(owned)
                if all(
                    s.applied_at_ms and s.applied_at_ms > killed_at_ms and s.owner != victim
                    for s in states.values()
                ):
                    return time.time() - killed_at_ms / 1000
                time.sleep(TAKEOVER_POLL_S)
            return float("nan")
        finally:
            stop.set()
            traffic.join()
            fleet.stop_all()
            store.reset()

    # -- the run ----------------------------------------------------------------

    def run(self) -> list[Figure]:
        config = self.config
        self.metrics_topic = self.topic("metrics", METRICS_PARTITIONS)
        self.dlq_topic = self.topic("dlq", DLQ_PARTITIONS)
        events, users = config.bench_events, config.bench_users
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
        step("processor x1")
        one, _ = self.processor_rate(topic, events, 1)
        self.add(
            "processor, 1 replica",
            one,
            "events/s",
            ">= 250,000",
            f"{one / bare:.2f}x bare (target >= 0.5x)",
        )
        step("processor x1, private Redis")
        redis_cost_rows(self, topic, events, bare)
        step("processor x2")
        two, _ = self.processor_rate(topic, events, 2)
        self.add("processor, 2 replicas", two, "events/s")
        step("publish delay")
        delays = self.publish_delay(config.bench_live_seconds, config.bench_live_rate)
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
        self.add(
            "takeover after SIGKILL",
            self.takeover(config.bench_live_seconds, config.bench_live_rate),
            "s",
            "<= 10 s",
        )
        for user_count in (int(n) for n in config.bench_rss_users.split(",")):
            self.peak_rss(user_count)
        return self.figures

    def peak_rss(self, user_count: int) -> None:
        step("peak RSS", f"{user_count:,} users")
        count = max(RSS_MIN_EVENTS, user_count)
        rss_topic = self.topic(f"rss-{user_count}")
        self.load(rss_topic, self.dataset(count, user_count, span_s=DATASET_SPAN_S))
        _, rss = self.processor_rate(rss_topic, count, 1)
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


def _observe_closable(
    store: StateStore, windowing: Windowing, closable: dict[float, float], stop: threading.Event
) -> None:
    """When each window became closable, from the watermarks the replicas write to Redis."""
    while not stop.is_set():
        now = time.time()
        # Traffic flows the whole time: no partition counts as idle here.
        stream = stream_time(
            store.partition_states(EVENT_PARTITION_RANGE),
            int(now * 1000),
            DELAY_IDLE_PARTITION_S * 1000,
            lambda _p: sys.maxsize,
        )
        if stream.watermark_s is not None:
            closed_by = windowing.latest_closed_start(stream.watermark_s)
            closable.setdefault(windowing.start_of(closed_by), now)
        time.sleep(WATERMARK_POLL_S)


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
