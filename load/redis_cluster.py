"""Failing a Redis Cluster master over to its replica, for chaos runs and tests.

`CLUSTER FAILOVER` sent to a replica is the operator's planned failover: the
replica catches up with its master's replication stream, then takes over its
slots, so no acknowledged write is lost. Clients see MOVED (followed by the
cluster client) and, for a moment, connection errors or CLUSTERDOWN, which the
state store's retry waits out.
"""

from __future__ import annotations

import time

import redis
from redis.cluster import RedisCluster

POLL_INTERVAL_S = 0.1


def fail_over(client: RedisCluster, key: str, timeout_s: float = 30.0) -> tuple[str, str]:
    """Promote a replica of the master serving `key`'s slot; returns (old, new) host:port.

    Returns once the promoted node serves as master and every node reports
    cluster_state:ok; raises TimeoutError after `timeout_s`.
    """
    client.nodes_manager.initialize()  # the slot map as it is now, not as last learned
    master = client.nodes_manager.get_node_from_slot(client.keyslot(key))
    master_client = master.redis_connection
    master_id = master_client.execute_command("CLUSTER MYID")
    # redis-py answers CLUSTER REPLICAS as {"host:port": {...}}, like CLUSTER NODES.
    replicas = master_client.execute_command("CLUSTER REPLICAS", master_id)
    if not replicas:
        raise RuntimeError(f"master {master.name} has no replica to fail over to")
    address = next(iter(replicas))
    host, port = address.rsplit(":", 1)
    replica = _node_client(master_client, host, int(port))
    try:
        replica.execute_command("CLUSTER FAILOVER")
        _wait(lambda: replica.info("replication")["role"] == "master", timeout_s, address)
        nodes = [node.redis_connection for node in client.get_nodes()]
        _wait(lambda: all(_cluster_ok(node) for node in nodes), timeout_s, address)
    finally:
        replica.close()
    return master.name, address


def _node_client(like: redis.Redis, host: str, port: int) -> redis.Redis:
    """A client for another node with the same credentials and TLS settings as `like`."""
    pool = like.connection_pool
    kwargs = {**pool.connection_kwargs, "host": host, "port": port}
    return redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))


def _cluster_ok(node: redis.Redis) -> bool:
    try:
        return node.cluster("INFO")["cluster_state"] == "ok"
    except redis.RedisError:
        return False  # a node mid-switch may refuse or drop the connection


def _wait(condition, timeout_s: float, address: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"failover to {address} did not complete in {timeout_s:.0f} s")
        time.sleep(POLL_INTERVAL_S)
