"""The emission half of the state store: published revisions, claims and the lease.

A window's emission hash records what has been published of it; a revision is
claimed (the record written ahead) before it is produced and committed after
the broker acknowledges it. The emitter lease lets one replica publish at a time.
StateStore inherits these; they share its client, keys, scripts and retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import redis

from statestore import codec
from statestore.codec import BARE_COMMIT_ARGV, CLAIM_ARGV, LEASE_ARGV, script_args
from statestore.keys import Keys
from statestore.types import Claim, Emission


class EmissionStore:
    redis: redis.Redis
    keys: Keys
    ttl_s: int
    _claim: Any
    _commit: Any
    _lease: Any
    _call: Callable
    _pipelined: Callable

    def emission(self, window_start: int) -> Emission:
        row = self._call(lambda: self.redis.hgetall(self.keys.emission(window_start)))
        return codec.emission(row)

    def emissions(self, window_starts: Iterable[int]) -> dict[int, Emission]:
        window_starts = list(window_starts)

        def fill(pipe: redis.client.Pipeline) -> None:
            for window_start in window_starts:
                pipe.hgetall(self.keys.emission(window_start))

        rows = self._pipelined(fill, transaction=False)
        return {ws: codec.emission(row) for ws, row in zip(window_starts, rows, strict=True)}

    def claim_revision(
        self, window_start: int, last_revision: int, record: bytes, version: int, final: bool
    ) -> Claim:
        args = script_args(
            CLAIM_ARGV,
            last_revision=last_revision,
            record=record,
            version=version,
            final=int(final),
            ttl_s=self.ttl_s,
        )
        key = self.keys.emission(window_start)
        reply = self._call(lambda: self._claim(keys=[key], args=args))
        if reply[0] == 1:
            return Claim(True)
        if reply[0] == 0:
            return Claim(False, codec.pending_claim(reply))
        return Claim(False)

    def commit_revision(self, window_start: int, revision: int) -> bool:
        args = script_args(BARE_COMMIT_ARGV, revision=revision, ttl_s=self.ttl_s)
        key = self.keys.emission(window_start)
        return bool(self._call(lambda: self._commit(keys=[key], args=args)))

    def acquire_emitter_lease(self, owner: str, ttl_ms: int) -> bool:
        """Take or renew the lease that lets one replica run the emitter."""
        key, args = self.keys.emitter_lease(), script_args(LEASE_ARGV, owner=owner, ttl_ms=ttl_ms)
        return bool(self._call(lambda: self._lease(keys=[key], args=args)))

    def release_emitter_lease(self, owner: str) -> None:
        """Hand the lease back at shutdown; if Redis is away it simply expires."""
        key, args = self.keys.emitter_lease(), script_args(LEASE_ARGV, owner=owner, ttl_ms=0)
        # A cluster mid-failover answers CLUSTERDOWN or has no node for the slot yet.
        away = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)
        with contextlib.suppress(*away, redis.exceptions.SlotNotCoveredError):
            self._lease(keys=[key], args=args)
