"""The Redis the pipeline is given: one server or a Redis Cluster, and what it requires of it.

On a cluster, a check about the server (its eviction policy) asks every primary,
and a scan for keys walks every primary: each holds only its own slots.
"""

from __future__ import annotations

import contextlib

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from services.common.errors import ConfigError

SOCKET_TIMEOUT_S = 10
CONNECT_TIMEOUT_S = 5
HEALTH_CHECK_INTERVAL_S = 30


def connect(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca_file: str | None = None,
    cluster: bool = False,
) -> redis.Redis | RedisCluster:
    """A client for the server at `url`, or for the cluster `url` is one node of.

    The cluster client learns the slot map from that node and follows MOVED
    redirections itself; the same credentials and CA serve every node.
    """
    # Credentials as arguments, not in the URL, so any character in them is safe.
    auth = {"username": username, "password": password, "ssl_ca_certs": tls_ca_file}
    client_class = RedisCluster if cluster else redis.Redis
    return client_class.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        **{name: value for name, value in auth.items() if value},
    )


def primaries(client: redis.Redis | RedisCluster) -> list[redis.Redis]:
    """A client per primary: the server itself, or each master of the cluster."""
    if isinstance(client, RedisCluster):
        # The client's slot map may predate a failover, and these calls go to each node
        # directly, past the redirections that would correct it: read it again first, so
        # a retried check asks the current primaries instead of a dead one forever. Any
        # failure here leaves the old map; a dead node then fails as a connection error,
        # which the caller's retry waits out.
        with contextlib.suppress(redis.RedisError, RedisClusterException):
            client.nodes_manager.initialize()
        return [node.redis_connection for node in client.get_primaries()]
    return [client]


# Under any other policy Redis may evict a window key while the partition's fence (which
# has no TTL) survives: the events behind that fence are lost without an error.
REQUIRED_EVICTION_POLICY = "noeviction"


def eviction_policy(client: redis.Redis | RedisCluster) -> str:
    """The maxmemory-policy, from INFO (CONFIG GET is disabled on managed Redis).

    On a cluster, each primary's: the first that is not noeviction, else noeviction.
    """
    policies = [
        str(server.info("memory").get("maxmemory_policy", "unknown"))
        for server in primaries(client)
    ]
    evicting = [policy for policy in policies if policy != REQUIRED_EVICTION_POLICY]
    return evicting[0] if evicting else REQUIRED_EVICTION_POLICY


def require_noeviction(client: redis.Redis | RedisCluster, allow_eviction: bool) -> str:
    """Raise ConfigError unless the server never evicts keys, or the operator accepted it."""
    policy = eviction_policy(client)
    if policy != REQUIRED_EVICTION_POLICY and not allow_eviction:
        raise ConfigError(
            f"Redis maxmemory-policy is {policy!r}: keys holding window state could be "
            f"evicted while their offset fences survive, losing events silently. Set "
            f"maxmemory-policy {REQUIRED_EVICTION_POLICY} on the server, or set "
            f"REDIS_ALLOW_EVICTION=true if you accept that risk"
        )
    return policy


# SCAN and UNLINK in slices: bounded work per round trip on a large namespace.
SCAN_COUNT = 1000
UNLINK_BATCH = 500


def delete_matching(client: redis.Redis | RedisCluster, pattern: str) -> int:
    """UNLINK every key matching `pattern` on every primary; returns how many.

    Each primary is scanned and unlinked on its own connection: its keys live on
    its slots, and an UNLINK of several keys must not span slots on a cluster.
    """
    deleted = 0
    for server in primaries(client):
        deleted += _delete_on(server, pattern)
    return deleted


def _delete_on(server: redis.Redis, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in server.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            deleted += _unlink(server, batch)
            batch = []
    if batch:
        deleted += _unlink(server, batch)
    return deleted


def _unlink(server: redis.Redis, keys: list[bytes]) -> int:
    """One UNLINK per slot: a cluster node refuses a multi-key command across slots (CROSSSLOT).

    The namespace's keys share a few hash tags, so this is a handful of commands.
    """
    by_slot: dict[int, list[bytes]] = {}
    for key in keys:
        by_slot.setdefault(key_slot(key), []).append(key)
    pipe = server.pipeline(transaction=False)
    for slot_keys in by_slot.values():
        pipe.unlink(*slot_keys)
    return sum(pipe.execute())
