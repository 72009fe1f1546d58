"""Publish delay: from a window becoming closable (every partition's watermark past its
end + grace, as the replicas wrote them to Redis) to its first record on the metrics
topic, under live traffic with short windows. Part of `clickstream bench`."""

from __future__ import annotations

import sys
import threading
import time
import uuid

from load.bench_parts import live_traffic
from load.fleet import ProcessorFleet
from services.common.config import redis_options
from services.common.kafka import make_consumer
from services.common.window_record import decode_record, parse_iso
from services.common.windowing import Windowing
from services.processor.watermark import stream_time
from statestore import StateStore

# Publish delay: short windows, so a 20 s run sees about ten of them close.
DELAY_WINDOW_S, DELAY_GRACE_S = 2, 1
DELAY_IDLE_PARTITION_S = 5  # above any gap in live traffic: no partition goes idle
# Closability is timed to 5 ms, well below the delays measured (p50 0.18 s, p99 0.27 s).
WATERMARK_POLL_S = 0.005
# Traffic starts once the replica has joined its group, or the first windows would
# measure the join instead of the publish path.
JOIN_BEFORE_TRAFFIC_S = 3
WATCHER_JOIN_TIMEOUT_S = 5


def measure(bench, seconds: int, rate: int) -> list[float]:
    """Seconds from each window becoming closable to its first record on the topic."""
    window, grace = DELAY_WINDOW_S, DELAY_GRACE_S
    windowing = Windowing(window, grace)
    topic = bench.topic(f"live-{uuid.uuid4().hex[:4]}")
    namespace = f"bench-{bench.run_id}-delay"
    store = StateStore.from_url(
        bench.config.redis_url, namespace, topic, **redis_options(bench.config)
    )
    fleet = ProcessorFleet(
        bench.processor_env(
            topic,
            namespace,
            WINDOW_SECONDS=str(window),
            GRACE_SECONDS=str(grace),
            IDLE_PARTITION_SECONDS=DELAY_IDLE_PARTITION_S,
        ),
        bench.log_dir,
    )
    closable: dict[float, float] = {}
    received: dict[float, float] = {}
    stop = threading.Event()

    fleet.start_all(1)
    watchers = [
        threading.Thread(
            target=_observe_closable,
            args=(store, windowing, bench.partitions, closable, stop),
            daemon=True,
        ),
        threading.Thread(
            target=_observe_first_revisions, args=(bench, received, stop), daemon=True
        ),
    ]
    for watcher in watchers:
        watcher.start()
    try:
        time.sleep(JOIN_BEFORE_TRAFFIC_S)
        live_traffic(bench.config, topic, seconds, rate, stop)
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


def _observe_first_revisions(bench, received: dict[float, float], stop: threading.Event) -> None:
    """When each window's revision 1 reaches a reader of the metrics topic."""
    consumer = make_consumer(
        bench.config,
        f"bench-delay-{bench.run_id}",
        **{"fetch.wait.max.ms": 5, "auto.offset.reset": "earliest"},
    )
    consumer.subscribe([bench.metrics_topic])
    while not stop.is_set():
        for message in consumer.consume(100, 0.05):
            if message.error() is None:
                record = decode_record(message.value())
                if record.revision == 1:
                    received.setdefault(parse_iso(record.window_start), time.time())
    consumer.close()


def _observe_closable(
    store: StateStore,
    windowing: Windowing,
    partitions: range,
    closable: dict[float, float],
    stop: threading.Event,
) -> None:
    """When each window became closable, from the watermarks the replicas write to Redis."""
    while not stop.is_set():
        now = time.time()
        # Traffic flows the whole time: no partition counts as idle here.
        stream = stream_time(
            store.partition_states(partitions),
            int(now * 1000),
            DELAY_IDLE_PARTITION_S * 1000,
            lambda _p: sys.maxsize,
        )
        if stream.watermark_s is not None:
            closed_by = windowing.latest_closed_start(stream.watermark_s)
            closable.setdefault(windowing.start_of(closed_by), now)
        time.sleep(WATERMARK_POLL_S)
