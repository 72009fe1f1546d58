"""`clickstream profile`: where the processor spends its time, on the local stack.

Loads a dataset into a fresh topic, runs one processor in this process under
cProfile until every record is applied, and prints the top functions by own
time. This is how the hot path's costs (decode, fold, Redis apply, consume)
were found; rerun it after changing any of them. cProfile sees the main thread
only: the apply script runs on BatchApplier's sender thread, so the wait for it
shows as the main thread's wait on its result, not as socket reads.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
import uuid

from load.bench import DATASET_SPAN_S, Bench
from services.common import config as cfg
from services.common.config import Config, Setting, positive_int
from services.common.topics import PARTITION_SETTINGS
from services.processor import main as processor_main
from statestore import StateStore

APPLIED_POLL_S = 0.05  # the profile stops within 50 ms of the last record applied

SETTINGS = (
    Setting("PROFILE_EVENTS", 500_000, "events to process under the profiler", parse=positive_int),
    Setting("PROFILE_USERS", 10_000, "distinct users in the dataset", parse=positive_int),
    Setting("PROFILE_TOP", 25, "functions to print", parse=positive_int),
    *PARTITION_SETTINGS,
)


def run(config: Config) -> int:
    bench = Bench(config)
    try:
        bench.sink_topics()
        topic = bench.topic("events")
        bench.load(
            topic, bench.dataset(config.profile_events, config.profile_users, DATASET_SPAN_S)
        )
        namespace = f"profile-{uuid.uuid4().hex[:8]}"
        processor_config = cfg.load(
            cfg.unique_settings(cfg.SHARED, processor_main.SETTINGS),
            environ=bench.processor_env(topic, namespace, LOG_LEVEL="warning"),
        )
        processor = processor_main.Processor(processor_config)
        stop = threading.Event()
        store = StateStore.from_url(config.redis_url, namespace, topic, **cfg.redis_options(config))
        started = time.perf_counter()

        def stop_when_applied() -> None:
            while bench.applied(store) < config.profile_events:
                time.sleep(APPLIED_POLL_S)
            stop.set()

        threading.Thread(target=stop_when_applied, daemon=True).start()
        profile = cProfile.Profile()
        profile.runcall(processor.run, stop)
        elapsed = time.perf_counter() - started
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(config.profile_top)
        print(out.getvalue())
        print(
            f"{config.profile_events:,} events in {elapsed:.2f}s under the profiler "
            f"({config.profile_events / elapsed:,.0f} events/s, start-up included)"
        )
        store.reset()
    finally:
        bench.cleanup()
    return 0
