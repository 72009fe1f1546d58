"""Infrastructure faults are waited out, not crashed on (DESIGN.md guarantee 8).

Each test runs real processor subprocesses against the real broker; Redis faults
use a private redis-server that the test may stop, restart and reconfigure.
"""

from __future__ import annotations

import time

import pytest
import redis
from confluent_kafka.admin import NewPartitions

from load.ports import free_port
from load.redis_server import RedisServer
from services.common.kafka import make_admin
from statestore import StateStore
from tests.integration.harness import (
    PAST,
    WINDOW_S,
    Replicas,
    all_final,
    applied,
    assert_ground_truth,
    dataset,
    expected_windows,
    produce,
    read_windows,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_a_redis_restart_longer_than_ten_seconds_stalls_the_replica_and_costs_nothing(
    pipeline, tmp_path, own_redis
):
    events = dataset(seed=21, start=PAST, seconds=6 * WINDOW_S, events=20_000)
    config = pipeline.config()
    expected = expected_windows(events)
    port = free_port()
    replicas = Replicas(
        pipeline.environ,
        tmp_path,
        REDIS_URL=own_redis.url,
        METRICS_PORT=str(port),
        BATCH_MAX_RECORDS="500",
    )
    namespace = pipeline.environ["STATE_NAMESPACE"]
    store = StateStore(redis.Redis.from_url(own_redis.url), namespace, config.events_topic)
    replica = replicas.start(0)
    try:
        wait_until(lambda: replica.get("/readyz")[0] == 200, "replica never became ready")
        produce(config, events[:10_000])
        wait_until(
            lambda: applied(store, pipeline.partitions) >= 2_000,
            "nothing applied before the outage",
        )
        own_redis.stop()  # SIGTERM: Redis writes its AOF and exits, as in a rolling restart
        produce(config, events[10_000:])
        wait_until(lambda: replica.get("/readyz")[0] == 503, "readiness stayed up without Redis")
        outage_ends = time.monotonic() + 12
        while time.monotonic() < outage_ends:
            assert replica.alive(), replicas.logs()
            assert replica.get("/healthz")[0] == 200, "liveness failed during a Redis outage"
            time.sleep(0.5)  # the outage's length, not a synchronisation
        own_redis.start()
        wait_until(lambda: replica.get("/readyz")[0] == 200, "not ready after Redis returned")
        published = read_windows(config, all_final(expected), 120)
        metrics = replica.get("/metrics")[1].decode()
    finally:
        exits = replicas.stop_all()
    assert exits == [0], replicas.logs()
    assert replica.starts == 1  # never exited and restarted
    assert 'clickstream_redis_faults_total{kind="connection"}' in metrics
    assert_ground_truth(published, expected)


def test_redis_down_past_the_retry_budget_ends_the_replica_with_exit_3(
    pipeline, tmp_path, own_redis
):
    replicas = Replicas(
        pipeline.environ,
        tmp_path,
        REDIS_URL=own_redis.url,
        REDIS_RETRY_SECONDS="3",
        METRICS_PORT=str(free_port()),
    )
    replica = replicas.start(0)
    wait_until(lambda: replica.get("/readyz")[0] == 200, "replica never became ready", 30)
    own_redis.stop()
    assert replica.process.wait(timeout=60) == 3
    assert "REDIS_RETRY_SECONDS=3" in replicas.logs()


def test_a_replica_started_while_redis_is_down_waits_for_it_instead_of_exiting(
    pipeline, tmp_path, own_redis
):
    events = dataset(seed=22, start=PAST, seconds=3 * WINDOW_S, events=3_000)
    config = pipeline.config()
    expected = expected_windows(events)
    produce(config, events)
    own_redis.stop()
    replicas = Replicas(
        pipeline.environ, tmp_path, REDIS_URL=own_redis.url, METRICS_PORT=str(free_port())
    )
    replica = replicas.start(0)
    try:
        wait_until(lambda: "redis unavailable, waiting" in replicas.logs(), "no wait logged", 30)
        assert replica.alive(), replicas.logs()
        own_redis.start()
        wait_until(lambda: replica.get("/readyz")[0] == 200, "not ready after Redis came", 60)
        published = read_windows(config, all_final(expected), 120)
    finally:
        exits = replicas.stop_all()
    assert exits == [0] and replica.starts == 1, replicas.logs()
    assert_ground_truth(published, expected)


def test_an_evicting_redis_is_refused_at_start_unless_the_operator_accepts_it(
    pipeline, tmp_path, own_redis
):
    redis.Redis.from_url(own_redis.url).config_set("maxmemory-policy", "volatile-lru")
    refused = Replicas(pipeline.environ, tmp_path / "refused", REDIS_URL=own_redis.url).start(0)
    assert refused.process.wait(timeout=60) == 2
    assert "volatile-lru" in refused.log_path.read_text()
    accepted = Replicas(
        pipeline.environ,
        tmp_path / "accepted",
        REDIS_URL=own_redis.url,
        REDIS_ALLOW_EVICTION="true",
        METRICS_PORT=str(free_port()),
    )
    replica = accepted.start(0)
    try:
        wait_until(lambda: replica.get("/readyz")[0] == 200, "override ignored", 30)
    finally:
        assert accepted.stop_all() == [0]


@pytest.mark.parametrize("missing", ["METRICS_TOPIC", "DLQ_TOPIC"])
def test_a_missing_output_topic_stops_the_processor_at_start_naming_it(pipeline, tmp_path, missing):
    absent = f"absent-{missing.lower()}-{time.time_ns()}"
    replicas = Replicas(pipeline.environ, tmp_path, **{missing: absent})
    replica = replicas.start(0)
    assert replica.process.wait(timeout=60) == 2
    assert absent in replicas.logs()


def test_partitions_added_while_running_are_merged_into_every_window(pipeline, tmp_path):
    events = dataset(seed=22, start=PAST, seconds=6 * WINDOW_S, events=12_000)
    config = pipeline.config()
    expected = expected_windows(events)
    store = StateStore(
        redis.Redis.from_url(config.redis_url),
        pipeline.environ["STATE_NAMESPACE"],
        config.events_topic,
    )
    replicas = Replicas(pipeline.environ, tmp_path, METRICS_PORT=str(free_port()))
    replicas.start_all(1)
    try:
        first = replicas.replicas[0]
        wait_until(lambda: first.get("/readyz")[0] == 200, "replica never became ready", 30)
        admin = make_admin(config)
        grown = pipeline.partitions + 2
        admin.create_partitions([NewPartitions(config.events_topic, grown)])[
            config.events_topic
        ].result()
        # Produced at once, before any replica may have noticed the new partitions: their
        # records cannot hold windows open, but the seal waits for them (the emitter asks
        # the broker for the count before sealing), so every final window has them all.
        # Every event goes to a partition by its index, so the two new ones carry their share.
        numbered = dict(zip(map(id, events), range(len(events)), strict=True))
        produce(config, events, partition_of=lambda event: numbered[id(event)] % grown)
        wait_until(
            lambda: applied(store, grown) == len(events), "new partitions never applied", 120
        )
        published = read_windows(config, all_final(expected), 120)
    finally:
        assert replicas.stop_all() == [0], replicas.logs()
    assert_ground_truth(published, expected)
