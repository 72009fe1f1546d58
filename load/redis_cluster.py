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
RETRY_AFTER_S = 5.0  # the server's manual failover timeout


def fail_over(client: RedisCluster, key: str, timeout_s: float = 30.0) -> tuple[str, str]:
    """Promote a replica of the master serving `key`'s slot; returns (old, new) host:port.

    Returns once the old master is a linked replica and every node reports
    cluster_state:ok and sees the promoted node as master, so a next failover finds
    the cluster whole; raises TimeoutError after `timeout_s`.
    """
    client.nodes_manager.initialize()  # the slot map as it is now, not as last learned
    master = client.nodes_manager.get_node_from_slot(client.keyslot(key))
    old = master.redis_connection
    master_id = old.execute_command("CLUSTER MYID")
    # redis-py answers CLUSTER REPLICAS as {"host:port": {...}}, like CLUSTER NODES.
    _wait(lambda: old.execute_command("CLUSTER REPLICAS", master_id), timeout_s, master.name)
    address = next(iter(old.execute_command("CLUSTER REPLICAS", master_id)))
    host, port = address.rsplit(":", 1)
    replica = _node_client(old, host, int(port))
    nodes = [node.redis_connection for node in client.get_nodes()]
    deadline = time.monotonic() + timeout_s
    try:
        # A manual failover can give up (the replica not caught up in time, as just after
        # a full resync) or lose to a newer configuration epoch (another failover a moment
        # before): then the old master is still master, and asking again is the remedy.
        while True:
            _wait(lambda: _role(replica) == ("slave", "up"), timeout_s, address)
            replica.execute_command("CLUSTER FAILOVER")
            try:
                _wait(lambda: _role(old) == ("slave", "up"), RETRY_AFTER_S, address)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        # Every node sees the new master before the next failover may start.
        _wait(lambda: all(_sees_master(node, address) for node in nodes), timeout_s, address)
    finally:
        replica.close()
    return master.name, address


def _role(node: redis.Redis) -> tuple[str, str]:
    """The node's role, and for a replica whether its link to the master is up."""
    info = node.info("replication")
    return info["role"], info.get("master_link_status", "up")


def _node_client(like: redis.Redis, host: str, port: int) -> redis.Redis:
    """A client for another node with the same credentials and TLS settings as `like`."""
    pool = like.connection_pool
    kwargs = {**pool.connection_kwargs, "host": host, "port": port}
    return redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))


def _sees_master(node: redis.Redis, address: str) -> bool:
    try:
        if node.cluster("INFO")["cluster_state"] != "ok":
            return False
        view = node.cluster("NODES").get(address, {})
    except redis.RedisError:
        return False  # a node mid-switch may refuse or drop the connection
    return "master" in view.get("flags", "")


def _wait(condition, timeout_s: float, node: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"failover at {node} did not complete in {timeout_s:.0f} s")
        time.sleep(POLL_INTERVAL_S)
