"""What the pipeline requires of the Redis server it is given."""

from __future__ import annotations

import redis

from services.common.errors import ConfigError

# Under any other policy Redis may evict a window key while the partition's fence (which
# has no TTL) survives: the events behind that fence are lost without an error.
REQUIRED_EVICTION_POLICY = "noeviction"


def eviction_policy(client: redis.Redis) -> str:
    """The server's maxmemory-policy, from INFO (CONFIG GET is disabled on managed Redis)."""
    info = client.info("memory")
    return str(info.get("maxmemory_policy", "unknown"))


def require_noeviction(client: redis.Redis, allow_eviction: bool) -> str:
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
