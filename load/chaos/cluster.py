"""The Redis Cluster fault of a local chaos run (CHAOS_REDIS=failover).

The run's state lives on the cluster named by REDIS_URL (REDIS_CLUSTER=true);
mid-replay, the master serving the run's emission slot (claims, commits, the
emitter lease: the slot every replica writes to) is failed over to its replica
with `CLUSTER FAILOVER`, while the partitions' batches go on elsewhere.
"""

from __future__ import annotations

import time

from load.redis_cluster import fail_over
from services.common.config import Config, redis_options
from services.common.errors import ConfigError
from services.common.logging import get_logger
from statestore.keys import Keys
from statestore.server import connect

log = get_logger("chaos")


def require_cluster(config: Config) -> None:
    if not config.redis_cluster:
        raise ConfigError(
            "CHAOS_REDIS=failover fails a Redis Cluster master over: set REDIS_CLUSTER=true "
            "and REDIS_URL to a node of a cluster whose masters have replicas "
            "(make up REDIS_MODE=cluster starts one)"
        )


def failover(config: Config, keys: Keys) -> str:
    """Fail the master of the run's emission slot over; returns the verdict row's text."""
    client = connect(config.redis_url, **redis_options(config))
    key = keys.emitter_lease()
    log.info("redis cluster failover starting (CLUSTER FAILOVER)", key=key)
    started = time.monotonic()
    try:
        old, new = fail_over(client, key)
    finally:
        client.close()
    took = time.monotonic() - started
    log.info("redis cluster failover done", old_master=old, new_master=new, took_s=round(took, 1))
    return f"1 failover, {old} -> {new} in {took:.1f} s (Redis Cluster, CLUSTER FAILOVER)"
