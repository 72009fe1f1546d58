"""The state store and the processor on a Redis Cluster: three masters, a replica each.

The same contract and the same ground truth as on a single Redis; on top of it,
what only a cluster does: slots on several masters, a master failing over to its
replica while processors run, and a wipe that must reach every primary.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import redis
from confluent_kafka.admin import NewTopic
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from load.api_server import ApiServer
from load.redis_cluster import fail_over
from services.common.config import redis_options
from services.common.kafka import make_admin
from statestore import StateStore, hll
from statestore.server import eviction_policy, primaries
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
from tests.published_contract import PublishedContract
from tests.statestore_contract import StateStoreContract, delta

pytestmark = pytest.mark.integration


class TestStateStoreOnRedisCluster(StateStoreContract):
    """Every contract test on the cluster: a script, transaction or multi-key command
    whose keys span slots fails here with CROSSSLOT or the client's slot check."""

    @pytest.fixture
    def client(self, redis_cluster):
        client = RedisCluster.from_url(redis_cluster.url)
        yield client
        client.close()

    def test_reset_reaches_the_keys_on_every_master(self, store, client):
        for partition in range(12):
            self.apply(store, partition, -1, 0, 0, [delta(0)])
        masters = {
            client.nodes_manager.get_node_from_slot(client.keyslot(store.keys.partition(p))).name
            for p in range(12)
        }
        assert len(masters) > 1  # twelve hash tags on one master of three: 3 in 3^12
        assert store.read_window(0, range(12)).events == 12
        assert store.reset() > 0
        pattern = store.keys.namespace_pattern()
        assert [list(server.scan_iter(match=pattern)) for server in primaries(client)] == [
            [],
            [],
            [],
        ]

    def test_a_script_call_across_partitions_is_refused_not_applied(self, store):
        keys = [store.keys.partition(0), store.keys.window_index(1)]
        with pytest.raises((RedisClusterException, redis.ResponseError)):
            store._call(lambda: store._apply(keys=keys, args=[]))

    def test_the_eviction_check_reads_every_primary(self, client):
        assert eviction_policy(client) == "noeviction"

    @pytest.mark.skipif(not hll.available(), reason="statestore._hll is not built")
    def test_the_cluster_puts_hll_members_where_the_client_says(self, store):
        assert store.hll_positions_agree() is True


class TestPublishedOnRedisCluster(PublishedContract):
    """The published windows and rollups the HTTP API reads, on the cluster."""

    @pytest.fixture
    def clients(self, redis_cluster):
        sync_client = RedisCluster.from_url(redis_cluster.url)
        yield sync_client, AsyncRedisCluster.from_url(redis_cluster.url)
        sync_client.close()


def cluster_store(pipeline) -> StateStore:
    config = pipeline.config()
    return StateStore.from_url(
        config.redis_url,
        pipeline.environ["STATE_NAMESPACE"],
        config.events_topic,
        **redis_options(config),
    )


def still_running(replicas) -> list[int]:
    return [index for index, replica in replicas.replicas.items() if replica.process.poll() is None]


def test_one_and_three_replicas_on_a_cluster_publish_ground_truth(cluster_pipeline, tmp_path):
    events = dataset(seed=21, start=PAST, seconds=6 * WINDOW_S, events=30_000)
    produce(cluster_pipeline.config(), events)
    expected = expected_windows(events)
    admin = make_admin(cluster_pipeline.config())
    finals = {}
    for count in (1, 3):
        run = uuid.uuid4().hex[:8]
        metrics_topic = f"{cluster_pipeline.environ['METRICS_TOPIC']}-{count}"
        admin.create_topics([NewTopic(metrics_topic, 3, 1)])[metrics_topic].result()
        overrides = {
            "METRICS_TOPIC": metrics_topic,
            "STATE_NAMESPACE": f"replicas-{run}",
            "CONSUMER_GROUP": f"replicas-{run}",
        }
        replicas = Replicas(cluster_pipeline.environ, tmp_path, **overrides)
        replicas.start_all(count)
        try:
            published = read_windows(cluster_pipeline.config(**overrides), all_final(expected))
        finally:
            assert replicas.stop_all() == [0] * count, replicas.logs()
        assert_ground_truth(published, expected)
        assert_revisions_well_formed(published)
        finals[count] = {
            start: {k: v for k, v in published.final(start).content() if k != "revision"}
            for start in expected
        }
    assert finals[1] == finals[3]


def test_killed_replica_on_a_cluster_counts_every_event_once(cluster_pipeline, tmp_path):
    events = dataset(seed=23, start=PAST, seconds=6 * WINDOW_S, events=45_000)
    config = cluster_pipeline.config()
    expected = expected_windows(events)
    replicas = Replicas(cluster_pipeline.environ, tmp_path, BATCH_MAX_RECORDS="500")
    replicas.start_all(3)
    store = cluster_store(cluster_pipeline)
    try:
        produce(config, events[:15_000])
        for victim, reached in ((0, 5_000), (1, 10_000), (2, 15_000)):
            # Mid-window by construction: each kill lands while a third of the data is applied.
            wait_until(
                lambda r=reached: applied(store, cluster_pipeline.partitions) >= r,
                f"{reached} events never applied",
            )
            replicas.kill(victim)
            replicas.start(victim)
        produce(config, events[15_000:])
        published = read_windows(config, all_final(expected), timeout_s=120)
    finally:
        replicas.stop_all()
    assert replicas.kills == 3
    assert_ground_truth(published, expected)
    assert_revisions_well_formed(published)


def test_cluster_wiped_on_every_primary_is_rebuilt_from_kafka(cluster_pipeline, tmp_path):
    events = dataset(seed=29, start=PAST, seconds=6 * WINDOW_S, events=30_000)
    config = cluster_pipeline.config()
    expected = expected_windows(events)
    store = cluster_store(cluster_pipeline)
    replicas = Replicas(cluster_pipeline.environ, tmp_path)
    replicas.start_all(2)
    try:
        produce(config, events[:15_000])
        wait_until(
            lambda: applied(store, cluster_pipeline.partitions) >= 15_000,
            "first half never applied",
        )
        for server in primaries(store.redis):
            server.flushall()
        assert applied(store, cluster_pipeline.partitions) < 15_000
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


def test_master_failover_mid_run_keeps_windows_exact_and_no_replica_exits(
    cluster_pipeline, tmp_path
):
    events = dataset(seed=31, start=PAST, seconds=6 * WINDOW_S, events=45_000)
    config = cluster_pipeline.config()
    expected = expected_windows(events)
    store = cluster_store(cluster_pipeline)
    replicas = Replicas(cluster_pipeline.environ, tmp_path, BATCH_MAX_RECORDS="500")
    replicas.start_all(3)
    producing = threading.Thread(target=paced_produce, args=(config, events, 8.0))
    producing.start()
    try:
        wait_until(
            lambda: applied(store, cluster_pipeline.partitions) >= 10_000,
            "10,000 events never applied",
        )
        # The emission slot's master: claims, commits and the lease all move with it.
        old, new = fail_over(store.redis, store.keys.emitter_lease())
        # And a partition's master, while batches are being applied to it.
        fail_over(store.redis, store.keys.partition(0))
        producing.join()
        published = read_windows(config, all_final(expected), timeout_s=120)
        assert still_running(replicas) == [0, 1, 2], replicas.logs()
    finally:
        producing.join()
        codes = replicas.stop_all()
    assert old != new
    assert codes == [0, 0, 0], replicas.logs()
    assert_ground_truth(published, expected)
    assert_revisions_well_formed(published)


def test_master_killed_mid_run_is_replaced_by_its_replica_without_a_replica_exit(
    cluster_pipeline, redis_cluster, tmp_path
):
    """SIGKILL, not a planned failover: the master's slots are unserved until its replica
    wins the election (node timeout 3 s); the replicas wait, retrying, and go on."""
    if redis_cluster.source != "local":
        pytest.skip("killing a node needs the local cluster's PID files")
    events = dataset(seed=38, start=PAST, seconds=6 * WINDOW_S, events=30_000)
    config = cluster_pipeline.config()
    expected = expected_windows(events)
    store = cluster_store(cluster_pipeline)
    replicas = Replicas(cluster_pipeline.environ, tmp_path)
    replicas.start_all(2)
    try:
        produce(config, events[:15_000])
        wait_until(
            lambda: applied(store, cluster_pipeline.partitions) >= 15_000,
            "first half never applied",
        )
        store.redis.nodes_manager.initialize()
        emission_master = store.redis.nodes_manager.get_node_from_slot(
            store.redis.keyslot(store.keys.emitter_lease())
        )
        redis_cluster.kill_node(emission_master.port)
        produce(config, events[15_000:])
        published = read_windows(
            config,
            lambda p: all(
                (r := p.last(start)) and r.final and r.total_events == want["total_events"]
                for start, want in expected.items()
            ),
            120,
        )
        assert still_running(replicas) == [0, 1], replicas.logs()
    finally:
        codes = replicas.stop_all()
        redis_cluster.restore()
    assert codes == [0, 0], replicas.logs()
    # Replication is asynchronous: a write acknowledged just before the kill may be lost
    # with the master, and is rebuilt from Kafka like any lost state; the last record
    # of every window is exact.
    for start, want in expected.items():
        assert mismatches(want, published.last(start)) == [], start


def test_the_api_answers_from_the_cluster(cluster_pipeline, tmp_path):
    events = dataset(seed=41, start=PAST, seconds=3 * WINDOW_S, events=6_000)
    config = cluster_pipeline.config()
    produce(config, events)
    expected = expected_windows(events)
    replicas = Replicas(cluster_pipeline.environ, tmp_path)
    replicas.start_all(1)
    try:
        published = read_windows(config, all_final(expected))
    finally:
        assert replicas.stop_all() == [0], replicas.logs()
    server = ApiServer(cluster_pipeline.environ, tmp_path / "api.log", "").start(probe="/readyz")
    try:
        newest = max(expected)
        status, body = server.get("/v1/windows/latest")
        assert status == 200 and body["window_start"] == newest
        assert body["total_events"] == published.last(newest).total_events
        status, body = server.get(f"/v1/rollups?resolution=1h&from={PAST}&to={PAST + 3600}")
        assert status == 200, body
        assert body["buckets"][0]["total_events"] == len(events)
    finally:
        server.stop()
