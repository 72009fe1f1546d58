"""StateStore: window state, offset fences, watermarks and emission records in Redis.

Operations are named for what they mean to the pipeline. Writes that must be
atomic are Lua scripts in statestore/scripts (loaded once, run by EVALSHA and
reloaded on NOSCRIPT by redis-py). Every call runs through RedisRetry
(statestore/retry.py): transient failures are retried on a time budget, and
every script is safe to retry because the fence or the claim makes a repeated
call a no-op.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import TypeVar

import redis
from redis.cluster import RedisCluster

from services.common.logging import get_logger
from statestore import codec, hll
from statestore.codec import (
    SEAL_ARGV,
    add_counters,
    add_sorted_set,
    apply_header,
    encode_dead_letters,
    encode_delta,
    script_args,
)
from statestore.emission import EmissionStore
from statestore.keys import Keys
from statestore.metrics import COUNTERS, EACH_EVENT, HLLS, SORTED_SETS
from statestore.retry import RedisRetry
from statestore.server import connect, delete_matching
from statestore.types import (
    NO_FENCE,
    ApplyResult,
    ApplyStatus,
    PartitionState,
    WindowDelta,
    WindowTotals,
)

log = get_logger("statestore")

T = TypeVar("T")
# Window and emission keys must outlive a window's allowed lateness (default
# 1 h) with room for an emitter backlog; the TTL keeps Redis memory bounded.
DEFAULT_TTL_S = 4 * 3600
# Sorted-set members read per partition when merging a window: far more than
# the published top N, so a value ranked low in each partition but high overall
# still counts in full.
TOP_READ = 1000
# Distinct members a partition's page or referrer zset admits per window (first come,
# in offset order); events of refused members are counted as overflow. A cap per
# partition, not per window: the merged top-N reads at most TOP_READ of each.
DEFAULT_SORTED_SET_CAP = 10_000
SCRATCH_TTL_MS = 60_000  # a crashed merge's scratch HLLs vanish on their own
# The counter whose sum is a window's version: it changes exactly when the window does.
_VERSION_FIELD = next(metric.field for metric in COUNTERS if metric.source == EACH_EVENT)


def script_source(name: str) -> str:
    """The text of a Lua script in statestore/scripts."""
    return resources.files("statestore").joinpath("scripts", name).read_text()


class StateStore(EmissionStore):
    """Window state per source partition; the emission half lives in EmissionStore."""

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        namespace: str,
        topic: str,
        ttl_s: int = DEFAULT_TTL_S,
        retry: RedisRetry | None = None,
        sorted_set_cap: int = DEFAULT_SORTED_SET_CAP,
    ):
        self.redis = client
        self.keys = Keys(namespace, topic)
        self.ttl_s = ttl_s
        self.sorted_set_cap = sorted_set_cap
        self._apply = client.register_script(script_source("apply_batch.lua"))
        self._seal = client.register_script(script_source("seal_window.lua"))
        self._claim = client.register_script(script_source("claim_revision.lua"))
        self._commit = client.register_script(script_source("commit_revision.lua"))
        self._lease = client.register_script(script_source("emitter_lease.lua"))
        self.retry = retry or RedisRetry()

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str,
        topic: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls_ca_file: str | None = None,
        cluster: bool = False,
        **kwargs,
    ) -> StateStore:
        """A store on the Redis at `url`, or on the Redis Cluster `url` is one node of."""
        client = connect(
            url, username=username, password=password, tls_ca_file=tls_ca_file, cluster=cluster
        )
        return cls(client, namespace, topic, **kwargs)

    def _call(self, operation: Callable[[], T]) -> T:
        return self.retry.call(operation)

    def _pipelined(
        self, fill: Callable[[redis.client.Pipeline], None], transaction: bool = False
    ) -> list:
        """Build and run a pipeline inside the retry: each attempt sends every command again."""

        def run() -> list:
            pipe = self.redis.pipeline(transaction=transaction)
            fill(pipe)
            return pipe.execute()

        return self._call(run)

    # -- partition batches --------------------------------------------------------

    def apply_batch(
        self,
        partition: int,
        expected_fence: int,
        first_offset: int,
        last_offset: int,
        deltas: Iterable[WindowDelta],
        watermark_s: float | None,
        dead_letters: Mapping[str, int],
        now_ms: int,
        owner: str = "",
    ) -> ApplyResult:
        """Apply a partition batch's deltas, fence and watermark atomically, or nothing.

        The batch is applied only if the stored fence is still `expected_fence` and
        the batch starts after it: a batch replayed after a crash, retried after a
        timeout, or sent by a replica that lost the partition changes nothing.
        Each page and referrer zset admits new members only up to `sorted_set_cap`.
        """
        deltas = list(deltas)
        keys = [self.keys.partition(partition), self.keys.window_index(partition)]
        args = apply_header(
            expected_fence,
            first_offset,
            last_offset,
            watermark_s,
            now_ms,
            self.ttl_s,
            owner,
            self.sorted_set_cap,
            len(deltas),
        )
        args += [delta.window_start for delta in deltas]
        for delta in deltas:
            keys += self.keys.window(partition, delta.window_start)
            args += encode_delta(delta)
        args += encode_dead_letters(dead_letters)
        status, fence, sealed_before = self._call(lambda: self._apply(keys=keys, args=args))
        return ApplyResult(ApplyStatus(status), int(fence), int(sealed_before))

    def partition_states(self, partitions: Iterable[int]) -> dict[int, PartitionState]:
        partitions = list(partitions)

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                pipe.hgetall(self.keys.partition(partition))

        rows = self._pipelined(fill, transaction=False)
        return {
            partition: codec.partition_state(partition, row)
            for partition, row in zip(partitions, rows, strict=True)
        }

    def mark_caught_up(self, end_offsets: Mapping[int, int], now_ms: int) -> None:
        """Heartbeat: the owner of these partitions has read them up to these log ends.

        `caught_up_at` is written for people reading Redis; stream time only needs
        the offset and the partition's applied_at.
        """

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition, end_offset in end_offsets.items():
                pipe.hset(
                    self.keys.partition(partition),
                    mapping={"caught_up_at": now_ms, "caught_up_offset": end_offset},
                )

        self._pipelined(fill, transaction=False)

    # -- windows ------------------------------------------------------------------

    def windows_starting_by(self, partitions: Iterable[int], latest_start: float) -> list[int]:
        """Window starts <= latest_start that any of the partitions holds state for."""

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                pipe.zrangebyscore(self.keys.window_index(partition), "-inf", latest_start)

        starts = {int(member) for row in self._pipelined(fill, transaction=False) for member in row}
        return sorted(starts)

    def window_versions(
        self, window_starts: Iterable[int], partitions: Iterable[int]
    ) -> dict[int, int]:
        """Events merged into each window so far: it changes exactly when the window does."""
        window_starts, partitions = list(window_starts), list(partitions)

        def fill(pipe: redis.client.Pipeline) -> None:
            for window_start in window_starts:
                for partition in partitions:
                    pipe.hget(self.keys.window(partition, window_start)[0], _VERSION_FIELD)

        rows = iter(self._pipelined(fill, transaction=False))
        return {
            window_start: sum(int(next(rows) or 0) for _ in partitions)
            for window_start in window_starts
        }

    def newest_window(self, partitions: Iterable[int]) -> int | None:

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                pipe.zrevrange(self.keys.window_index(partition), 0, 0)

        starts = [int(row[0]) for row in self._pipelined(fill, transaction=False) if row]
        return max(starts) if starts else None

    def read_window(self, window_start: int, partitions: Iterable[int]) -> WindowTotals:
        """Merge one window's state across partitions (counts summed, HLLs unioned)."""
        partitions = list(partitions)

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                counters, *rest = self.keys.window(partition, window_start)
                pipe.hgetall(counters)
                for key in rest[: len(HLLS)]:
                    pipe.dump(key)
                for key in rest[len(HLLS) :]:
                    pipe.zrevrange(key, 0, TOP_READ - 1, withscores=True)

        rows = iter(self._pipelined(fill, transaction=False))
        totals = WindowTotals(window_start)
        dumps: dict[str, list[bytes]] = {metric.totals_attribute: [] for metric in HLLS}
        for _ in partitions:
            add_counters(totals, next(rows))
            for blobs in dumps.values():
                blob = next(rows)
                if blob:
                    blobs.append(blob)
            for metric in SORTED_SETS:
                add_sorted_set(totals, metric.name, next(rows))
        for attribute, count in self._union_counts(dumps).items():
            setattr(totals, attribute, count)
        return totals

    def _union_counts(self, dumps: Mapping[str, list[bytes]]) -> dict[str, int]:
        """PFCOUNT over the union of HLLs that live on different slots, per name.

        The serialized HLLs are restored into scratch keys on the emission slot,
        counted there and deleted, in one transaction.
        """
        token = secrets.token_hex(6)
        scratch: dict[str, list[tuple[str, bytes]]] = {}
        index = 0
        for name, blobs in dumps.items():
            scratch[name] = []
            for blob in blobs:
                scratch[name].append((self.keys.scratch(token, index), blob))
                index += 1
        counted = [name for name, pairs in scratch.items() if pairs]
        all_scratch = [key for pairs in scratch.values() for key, _blob in pairs]
        if not all_scratch:
            return dict.fromkeys(dumps, 0)

        def fill(pipe: redis.client.Pipeline) -> None:
            for pairs in scratch.values():
                for key, blob in pairs:
                    pipe.restore(key, SCRATCH_TTL_MS, blob, replace=True)
            for name in counted:
                # Raw: a cluster pipeline refuses pfcount() even on keys of one slot.
                pipe.execute_command("PFCOUNT", *(key for key, _blob in scratch[name]))
            pipe.delete(*all_scratch)

        results = self._pipelined(fill, transaction=True)
        counts = results[len(all_scratch) : len(all_scratch) + len(counted)]
        found = dict(zip(counted, map(int, counts), strict=True))
        return {name: found.get(name, 0) for name in dumps}

    def seal(
        self,
        partitions: Iterable[int],
        threshold: int,
        fences_seen: Mapping[int, int] | None = None,
    ) -> bool:
        """Refuse, from now on, batches touching windows that start before `threshold`.

        `fences_seen` are the fences the caller based its decision on; a partition
        whose fence has gone below them lost its state and is not sealed. Returns
        False when any partition was refused (the caller should not publish).
        """
        fences_seen = fences_seen or {}
        sealed = True
        for partition in partitions:
            key = self.keys.partition(partition)
            args = script_args(
                SEAL_ARGV, threshold=threshold, min_fence=fences_seen.get(partition, NO_FENCE)
            )
            status, _ = self._call(lambda key=key, args=args: self._seal(keys=[key], args=args))
            sealed = sealed and status == 1
        return sealed

    def forget_window(self, partitions: Iterable[int], window_start: int) -> None:
        """Drop a finalized window from the partitions' indexes and delete its working keys.

        Only for a sealed window: the seal refuses any later batch that would
        write these keys again. One UNLINK per partition stays on its slot (sent as
        a raw command: a cluster pipeline's unlink() takes one key only).
        """

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                pipe.zrem(self.keys.window_index(partition), window_start)
                pipe.execute_command("UNLINK", *self.keys.window(partition, window_start))

        self._pipelined(fill, transaction=False)

    # -- topology, for readers ---------------------------------------------------

    def record_topology(self, partitions: int, window_seconds: int) -> None:
        self._call(
            lambda: self.redis.hset(
                self.keys.topology(),
                mapping={"partitions": partitions, "window_seconds": window_seconds},
            )
        )

    def topology(self) -> tuple[int, int] | None:
        row = self._call(lambda: self.redis.hgetall(self.keys.topology()))
        if not row:
            return None
        return int(row[b"partitions"]), int(row[b"window_seconds"])

    def in_progress_window(self) -> tuple[WindowTotals, int] | None:
        """The newest window with state that has not been published yet, and the window size."""
        topology = self.topology()
        if topology is None:
            return None
        partitions, window_seconds = topology
        newest = self.newest_window(range(partitions))
        if newest is None or self.emission(newest).revision > 0:
            return None
        return self.read_window(newest, range(partitions)), window_seconds

    def hll_positions_agree(self) -> bool:
        """Whether this Redis puts HyperLogLog members where statestore.hll says."""
        probe = self.keys.scratch(f"hll-probe-{secrets.token_hex(4)}", 0)
        return self._call(lambda: hll.server_agrees(self.redis, probe))

    def reset(self) -> int:
        """Delete every key of this namespace (all topics); returns how many."""
        return delete_matching(self.redis, self.keys.namespace_pattern())
