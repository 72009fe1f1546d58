"""StateStore: window state, offset fences, watermarks and emission records in Redis.

Operations are named for what they mean to the pipeline. Writes that must be
atomic are Lua scripts in statestore/scripts (loaded once, run by EVALSHA and
reloaded on NOSCRIPT by redis-py). Transient Redis errors are retried with
bounded, jittered backoff and a log line per retry; every script is safe to
retry because the fence or the claim makes a repeated call a no-op.
"""

from __future__ import annotations

import enum
import secrets
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TypeVar

import redis

from services.common.logging import get_logger
from statestore.keys import HLL_KINDS, Keys
from statestore.retry import RedisRetry

log = get_logger("statestore")

T = TypeVar("T")
NO_FENCE = -1
TOP_READ = 1000  # page and referrer members read per partition when merging a window
SCRATCH_TTL_MS = 60_000

# Counter fields of a window's hash.
EVENTS, DURATION, LATE = "events", "duration_ms", "late"
BREAKDOWNS = {"et": "event_types", "dev": "devices", "cc": "countries", "cat": "categories"}


@dataclass
class WindowDelta:
    """What one partition batch adds to one window."""

    window_start: int
    events: int = 0
    duration_ms: int = 0
    late: int = 0
    event_types: Counter = field(default_factory=Counter)
    devices: Counter = field(default_factory=Counter)
    countries: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    users: Collection[str] = ()
    sessions: Collection[str] = ()
    cart_sessions: Collection[str] = ()
    purchase_sessions: Collection[str] = ()
    pages: Mapping[str, int] = field(default_factory=dict)
    referrers: Mapping[str, int] = field(default_factory=dict)


@dataclass
class WindowTotals:
    """A window's state merged across partitions."""

    window_start: int
    events: int = 0
    duration_ms: int = 0
    late: int = 0
    event_types: Counter = field(default_factory=Counter)
    devices: Counter = field(default_factory=Counter)
    countries: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    unique_users: int = 0
    unique_sessions: int = 0
    cart_sessions: int = 0
    purchase_sessions: int = 0
    pages: Counter = field(default_factory=Counter)
    referrers: Counter = field(default_factory=Counter)


class ApplyStatus(enum.Enum):
    APPLIED = 1
    STALE = 0  # fence moved: a replayed, retried or zombie batch; nothing written
    SEALED = -1  # a window of the batch was finalized; nothing written


@dataclass(frozen=True)
class ApplyResult:
    status: ApplyStatus
    fence: int
    sealed_before: int


@dataclass(frozen=True)
class PartitionState:
    partition: int
    fence: int = NO_FENCE
    watermark: float | None = None
    applied_at_ms: int | None = None
    caught_up_at_ms: int | None = None
    caught_up_offset: int | None = None  # the log end its owner last read up to
    sealed_before: int = -1
    owner: str = ""
    dead_letters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Emission:
    """What has been published of a window, and any claim not yet committed."""

    revision: int = 0
    version: int = 0
    final: bool = False
    pending_record: bytes | None = None
    pending_revision: int = 0
    pending_version: int = 0
    pending_final: bool = False


@dataclass(frozen=True)
class Claim:
    claimed: bool
    # When another claim is pending, that one must be published first.
    pending: Emission | None = None


def _script(name: str) -> str:
    return resources.files("statestore").joinpath("scripts", name).read_text()


class StateStore:
    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        topic: str,
        ttl_s: int = 4 * 3600,
        retry: RedisRetry | None = None,
    ):
        self.redis = client
        self.keys = Keys(namespace, topic)
        self.ttl_s = ttl_s
        self._apply = client.register_script(_script("apply_batch.lua"))
        self._seal = client.register_script(_script("seal_window.lua"))
        self._claim = client.register_script(_script("claim_revision.lua"))
        self._commit = client.register_script(_script("commit_revision.lua"))
        self.retry = retry or RedisRetry()

    @classmethod
    def from_url(cls, url: str, namespace: str, topic: str, **kwargs) -> StateStore:
        client = redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
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
        watermark: float | None,
        dead_letters: Mapping[str, int],
        now_ms: int,
        owner: str = "",
    ) -> ApplyResult:
        """Apply a partition batch's deltas, fence and watermark atomically, or nothing.

        The batch is applied only if the stored fence is still `expected_fence` and
        the batch starts after it: a batch replayed after a crash, retried after a
        timeout, or sent by a replica that lost the partition changes nothing.
        """
        deltas = list(deltas)
        keys = [self.keys.partition(partition), self.keys.window_index(partition)]
        args: list = [
            expected_fence,
            first_offset,
            last_offset,
            "" if watermark is None else f"{watermark:.3f}",
            now_ms,
            self.ttl_s,
            owner,
            len(deltas),
        ]
        args += [delta.window_start for delta in deltas]
        for delta in deltas:
            keys += self.keys.window(partition, delta.window_start)
            args += _encode_delta(delta)
        args.append(len(dead_letters))
        for reason, count in dead_letters.items():
            args += (reason, count)
        status, fence, sealed_before = self._call(lambda: self._apply(keys=keys, args=args))
        return ApplyResult(ApplyStatus(status), int(fence), int(sealed_before))

    def partition_states(self, partitions: Iterable[int]) -> dict[int, PartitionState]:
        partitions = list(partitions)

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                pipe.hgetall(self.keys.partition(partition))

        rows = self._pipelined(fill, transaction=False)
        return {
            partition: _partition_state(partition, row)
            for partition, row in zip(partitions, rows, strict=True)
        }

    def mark_caught_up(self, end_offsets: Mapping[int, int], now_ms: int) -> None:
        """Heartbeat: the owner of these partitions has read them up to these log ends."""

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
                    pipe.hget(self.keys.window(partition, window_start)[0], EVENTS)

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
                counters, *hlls, pages, referrers = self.keys.window(partition, window_start)
                pipe.hgetall(counters)
                for key in hlls:
                    pipe.dump(key)
                pipe.zrevrange(pages, 0, TOP_READ - 1, withscores=True)
                pipe.zrevrange(referrers, 0, TOP_READ - 1, withscores=True)

        rows = self._pipelined(fill, transaction=False)
        totals = WindowTotals(window_start)
        dumps: dict[str, list[bytes]] = {kind: [] for kind in HLL_KINDS}
        per_partition = 3 + len(HLL_KINDS)
        for index in range(len(partitions)):
            counters, *hll_dumps, pages, referrers = rows[
                index * per_partition : (index + 1) * per_partition
            ]
            _add_counters(totals, counters)
            for kind, blob in zip(HLL_KINDS, hll_dumps, strict=True):
                if blob:
                    dumps[kind].append(blob)
            for member, score in pages:
                totals.pages[member.decode()] += int(score)
            for member, score in referrers:
                totals.referrers[member.decode()] += int(score)
        (
            totals.unique_users,
            totals.unique_sessions,
            totals.cart_sessions,
            totals.purchase_sessions,
        ) = self._union_counts(dumps)
        return totals

    def _union_counts(self, dumps: Mapping[str, list[bytes]]) -> list[int]:
        """PFCOUNT over the union of HLLs that live on different slots.

        The serialized HLLs are restored into scratch keys on the emission slot,
        counted there and deleted, in one transaction.
        """
        token = secrets.token_hex(6)
        scratch_by_kind: dict[str, list[tuple[str, bytes]]] = {}
        index = 0
        for kind, blobs in dumps.items():
            scratch_by_kind[kind] = []
            for blob in blobs:
                scratch_by_kind[kind].append((self.keys.scratch(token, index), blob))
                index += 1
        counted = [kind for kind in dumps if scratch_by_kind[kind]]
        all_scratch = [key for pairs in scratch_by_kind.values() for key, _blob in pairs]

        def fill(pipe: redis.client.Pipeline) -> None:
            for pairs in scratch_by_kind.values():
                for key, blob in pairs:
                    pipe.restore(key, SCRATCH_TTL_MS, blob, replace=True)
            for kind in counted:
                pipe.pfcount(*(key for key, _blob in scratch_by_kind[kind]))
            pipe.delete(*all_scratch)

        results = self._pipelined(fill, transaction=True) if all_scratch else []
        counts = dict(zip(counted, results[index : index + len(counted)], strict=True))
        return [int(counts.get(kind, 0)) for kind in dumps]

    def seal(self, partitions: Iterable[int], threshold: int) -> None:
        """Refuse, from now on, batches touching windows that start before `threshold`."""
        for partition in partitions:
            key = self.keys.partition(partition)
            self._call(lambda key=key: self._seal(keys=[key], args=[threshold]))

    def forget_window(self, partitions: Iterable[int], window_start: int) -> None:
        """Drop a finalized window from the partitions' indexes (its keys expire by TTL)."""

        def fill(pipe: redis.client.Pipeline) -> None:
            for partition in partitions:
                pipe.zrem(self.keys.window_index(partition), window_start)

        self._pipelined(fill, transaction=False)

    # -- emission -----------------------------------------------------------------

    def emission(self, window_start: int) -> Emission:
        row = self._call(lambda: self.redis.hgetall(self.keys.emission(window_start)))
        return _emission(row)

    def emissions(self, window_starts: Iterable[int]) -> dict[int, Emission]:
        window_starts = list(window_starts)

        def fill(pipe: redis.client.Pipeline) -> None:
            for window_start in window_starts:
                pipe.hgetall(self.keys.emission(window_start))

        rows = self._pipelined(fill, transaction=False)
        return {ws: _emission(row) for ws, row in zip(window_starts, rows, strict=True)}

    def claim_revision(
        self, window_start: int, last_revision: int, record: bytes, version: int, final: bool
    ) -> Claim:
        reply = self._call(
            lambda: self._claim(
                keys=[self.keys.emission(window_start)],
                args=[last_revision, record, version, int(final), self.ttl_s],
            )
        )
        if reply[0] == 1:
            return Claim(True)
        if reply[0] == 0:
            return Claim(
                False,
                Emission(
                    revision=int(reply[4]) - 1,
                    pending_record=reply[1],
                    pending_revision=int(reply[4]),
                    pending_version=int(reply[2]),
                    pending_final=reply[3] == b"1",
                ),
            )
        return Claim(False)

    def commit_revision(self, window_start: int, revision: int) -> bool:
        return bool(
            self._call(
                lambda: self._commit(
                    keys=[self.keys.emission(window_start)], args=[revision, self.ttl_s]
                )
            )
        )

    def acquire_emitter_lease(self, owner: str, ttl_ms: int) -> bool:
        """Take or renew the lease that lets one replica run the emitter."""
        key = self.keys.emitter_lease()

        def acquire() -> bool:
            if self.redis.set(key, owner, nx=True, px=ttl_ms):
                return True
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    if pipe.get(key) != owner.encode():
                        return False
                    pipe.multi()
                    pipe.pexpire(key, ttl_ms)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    return False

        return self._call(acquire)

    def release_emitter_lease(self, owner: str) -> None:
        """Hand the lease back at shutdown; if Redis is away it simply expires."""
        key = self.keys.emitter_lease()
        with self.redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) == owner.encode():
                    pipe.multi()
                    pipe.delete(key)
                    pipe.execute()
            except (redis.WatchError, redis.ConnectionError, redis.TimeoutError):
                pass

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

    def reset(self) -> int:
        """Delete every key of this namespace (all topics); returns how many."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=self.keys.namespace_pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += self.redis.unlink(*batch)
                batch = []
        if batch:
            deleted += self.redis.unlink(*batch)
        return deleted


def _encode_delta(delta: WindowDelta) -> list:
    """Flatten a delta into apply_batch.lua's ARGV layout."""
    counters: list = [EVENTS, delta.events, DURATION, delta.duration_ms]
    if delta.late:
        counters += (LATE, delta.late)
    for prefix, attribute in BREAKDOWNS.items():
        for name, count in getattr(delta, attribute).items():
            counters += (f"{prefix}:{name}", count)
    args: list = [len(counters) // 2, *counters]
    for members in (delta.users, delta.sessions, delta.cart_sessions, delta.purchase_sessions):
        args.append(len(members))
        args += members
    for counts in (delta.pages, delta.referrers):
        args.append(len(counts))
        for member, count in counts.items():
            args += (member, count)
    return args


def _add_counters(totals: WindowTotals, row: Mapping[bytes, bytes]) -> None:
    for raw_field, raw_value in row.items():
        name, value = raw_field.decode(), int(raw_value)
        if name == EVENTS:
            totals.events += value
        elif name == DURATION:
            totals.duration_ms += value
        elif name == LATE:
            totals.late += value
        else:
            prefix, _, label = name.partition(":")
            getattr(totals, BREAKDOWNS[prefix])[label] += value


def _partition_state(partition: int, row: Mapping[bytes, bytes]) -> PartitionState:
    def number(name: bytes, default=None, kind=int):
        return kind(row[name]) if name in row else default

    return PartitionState(
        partition=partition,
        fence=number(b"fence", NO_FENCE),
        watermark=number(b"watermark", None, float),
        applied_at_ms=number(b"applied_at"),
        caught_up_at_ms=number(b"caught_up_at"),
        caught_up_offset=number(b"caught_up_offset"),
        sealed_before=number(b"sealed_before", -1),
        owner=row.get(b"owner", b"").decode(),
        dead_letters={
            name.decode()[4:]: int(value) for name, value in row.items() if name.startswith(b"dlq:")
        },
    )


def _emission(row: Mapping[bytes, bytes]) -> Emission:
    return Emission(
        revision=int(row.get(b"revision", 0)),
        version=int(row.get(b"version", 0)),
        final=row.get(b"final") == b"1",
        pending_record=row.get(b"pending_record"),
        pending_revision=int(row.get(b"pending_revision", 0)),
        pending_version=int(row.get(b"pending_version", 0)),
        pending_final=row.get(b"pending_final") == b"1",
    )
