"""Rollups: windows merged into coarser buckets, unique counts by HLL union, never by sum.

A final window keeps one merged copy of its HyperLogLogs and a summary
(counters, top pages and referrers) on the emission slot (see published.py).
Windows not final yet (open, or within allowed lateness) are read from their
live per-partition state: their HLLs are DUMPed and RESTOREd into scratch keys
on the emission slot, as StateStore._union_counts does, so one PFCOUNT per
bucket and kind counts the union of final sketches and live ones.

Top pages and referrers: each window keeps its TOP_KEPT most visited; a page
outside a window's kept list had at most that list's smallest count there (its
floor). A bucket's merged count of a page is therefore at most the sum of the
floors of the windows it was missing from below its true count: the bucket
states that sum as the bound on undercount.

A bucket made only of final windows never changes, so its merged result is
cached in process, keyed by the exact set of windows it merged.
"""

from __future__ import annotations

import secrets
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec
import redis
import redis.asyncio as aioredis

from statestore.keys import HLL_KINDS, WINDOW_KEY_KINDS, Keys
from statestore.store import BREAKDOWNS, DURATION, EVENTS, LATE, WindowTotals

TOP_KEPT = 100  # pages and referrers kept per window (and read per partition when live)
SCRATCH_TTL_MS = 60_000  # scratch keys outlive a reader that dies mid-request by this much
BUCKET_CACHE_SIZE = 8192


class WindowSummary(msgspec.Struct, kw_only=True):
    """What a rollup needs of a final window besides its sketches."""

    events: int = 0
    duration_ms: int = 0
    late: int = 0
    event_types: dict[str, int] = {}
    devices: dict[str, int] = {}
    countries: dict[str, int] = {}
    categories: dict[str, int] = {}
    pages: dict[str, int] = {}
    referrers: dict[str, int] = {}
    pages_floor: int = 0  # a page not in `pages` had at most this many views here
    referrers_floor: int = 0

    @classmethod
    def from_totals(cls, totals: WindowTotals) -> WindowSummary:
        pages, pages_floor = top_kept(totals.pages)
        referrers, referrers_floor = top_kept(totals.referrers)
        return cls(
            events=totals.events,
            duration_ms=totals.duration_ms,
            late=totals.late,
            event_types=dict(totals.event_types),
            devices=dict(totals.devices),
            countries=dict(totals.countries),
            categories=dict(totals.categories),
            pages=pages,
            referrers=referrers,
            pages_floor=pages_floor,
            referrers_floor=referrers_floor,
        )

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, raw: bytes) -> WindowSummary:
        return msgspec.json.decode(raw, type=cls)


def top_kept(counts: Mapping[str, int], kept: int = TOP_KEPT) -> tuple[dict[str, int], int]:
    """The `kept` highest counts and the floor a left-out member stays under (0: none left out)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= kept:
        return dict(ranked), 0
    return dict(ranked[:kept]), ranked[kept - 1][1]


def stage_sketches(
    client: redis.Redis, keys: Keys, window_start: int, partitions: Iterable[int]
) -> dict[str, list[str]]:
    """Restore a window's per-partition HLLs into scratch keys on the emission slot."""
    partitions = list(partitions)
    pipe = client.pipeline(transaction=False)
    for partition in partitions:
        for key in _hll_keys(keys, partition, window_start):
            pipe.dump(key)
    dumps = iter(pipe.execute())
    token = secrets.token_hex(6)
    scratch: dict[str, list[str]] = {kind: [] for kind in HLL_KINDS}
    pipe = client.pipeline(transaction=False)
    for partition in partitions:
        for kind in HLL_KINDS:
            blob = next(dumps)
            if blob:
                key = keys.scratch(token, len(partitions) * HLL_KINDS.index(kind) + partition)
                pipe.restore(key, SCRATCH_TTL_MS, blob, replace=True)
                scratch[kind].append(key)
    pipe.execute()
    return scratch


def _hll_keys(keys: Keys, partition: int, window_start: int) -> tuple[str, ...]:
    window_keys = dict(zip(WINDOW_KEY_KINDS, keys.window(partition, window_start), strict=True))
    return tuple(window_keys[kind] for kind in HLL_KINDS)


@dataclass
class Bucket:
    """Windows merged over [start, end): totals shaped like one window's."""

    start: int
    end: int
    totals: WindowTotals
    windows: int = 0
    final: bool = True
    pages_undercount: int = 0
    referrers_undercount: int = 0


@dataclass
class _LiveWindow:
    summary: WindowSummary
    dumps: dict[str, list[bytes]] = field(default_factory=lambda: {k: [] for k in HLL_KINDS})


class RollupReader:
    """Read side for the HTTP API (redis.asyncio)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, cache_size: int = BUCKET_CACHE_SIZE):
        self.redis = client
        self.keys = keys
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, Bucket] = OrderedDict()

    async def topology(self) -> tuple[int, int] | None:
        """Partitions of the source topic and window size, as the processor recorded them."""
        row = await self.redis.hgetall(self.keys.topology())
        if not row:
            return None
        return int(row[b"partitions"]), int(row[b"window_seconds"])

    async def watermark(self, partitions: int) -> float | None:
        """The furthest event time any partition has applied."""
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(partitions):
            pipe.hget(self.keys.partition(partition), "watermark")
        marks = [float(mark) for mark in await pipe.execute() if mark]
        return max(marks) if marks else None

    async def in_progress(self, partitions: int) -> WindowTotals | None:
        """The newest window with state that has not been published yet."""
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(partitions):
            pipe.zrevrange(self.keys.window_index(partition), 0, 0)
        starts = [int(row[0]) for row in await pipe.execute() if row]
        if not starts:
            return None
        newest = max(starts)
        if await self.redis.zscore(self.keys.published_index(), newest) is not None:
            return None
        live = await self._read_live([newest], range(partitions))
        counts = await self._count({newest: [("live", newest)]}, live)
        return _totals(newest, live[newest].summary, counts[newest])

    async def buckets(
        self, oldest: int, newest_exclusive: int, size_s: int, partitions: int
    ) -> list[Bucket]:
        """Buckets of `size_s` over [oldest, newest_exclusive) that hold any window, oldest first.

        1. List the range's final windows (rollup index) and live ones (published
           but not final, or not published yet: the partitions' window indexes).
        2. Buckets of final windows already merged come from the cache.
        3. One pipeline reads the other final windows' summaries and the live
           windows' state; one transaction restores the live HLLs into scratch
           keys, PFCOUNTs each bucket's union per kind and deletes the scratch.
        """
        final, live = await self._windows_in(oldest, newest_exclusive, partitions)
        members: dict[int, list[tuple[str, int]]] = {}
        for window_start in sorted(final | live):
            origin = "final" if window_start in final else "live"
            members.setdefault(window_start // size_s * size_s, []).append((origin, window_start))
        done: dict[int, Bucket] = {}
        todo: dict[int, list[tuple[str, int]]] = {}
        for start, windows in members.items():
            cached = self._cache.get((start, size_s, tuple(windows)))
            if cached is not None:
                self._cache.move_to_end((start, size_s, tuple(windows)))
                done[start] = cached
            else:
                todo[start] = windows
        if todo:
            done.update(await self._merge(todo, size_s, partitions))
        return [done[start] for start in sorted(done)]

    async def _windows_in(
        self, oldest: int, newest_exclusive: int, partitions: int
    ) -> tuple[set[int], set[int]]:
        top = f"({newest_exclusive}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrangebyscore(self.keys.rollup_index(), oldest, top)
        pipe.zrangebyscore(self.keys.published_index(), oldest, top)
        for partition in range(partitions):
            pipe.zrangebyscore(self.keys.window_index(partition), oldest, top)
        final_rows, *other_rows = await pipe.execute()
        final = {int(member) for member in final_rows}
        live = {int(member) for row in other_rows for member in row} - final
        return final, live

    async def _merge(
        self, todo: Mapping[int, list[tuple[str, int]]], size_s: int, partitions: int
    ) -> dict[int, Bucket]:
        finals = [ws for windows in todo.values() for origin, ws in windows if origin == "final"]
        lives = [ws for windows in todo.values() for origin, ws in windows if origin == "live"]
        pipe = self.redis.pipeline(transaction=False)
        for window_start in finals:
            pipe.hget(self.keys.published(window_start), "rollup")
        summaries = {
            ws: WindowSummary.decode(raw) if raw else WindowSummary()
            for ws, raw in zip(finals, await pipe.execute(), strict=True)
        }
        live = await self._read_live(lives, range(partitions))
        counts = await self._count(todo, live)
        merged = {}
        for start, windows in todo.items():
            bucket = Bucket(start, start + size_s, WindowTotals(start))
            for origin, window_start in windows:
                summary = (
                    summaries[window_start] if origin == "final" else live[window_start].summary
                )
                _add_summary(bucket, summary)
                bucket.windows += 1
                bucket.final = bucket.final and origin == "final"
            (
                bucket.totals.unique_users,
                bucket.totals.unique_sessions,
                bucket.totals.cart_sessions,
                bucket.totals.purchase_sessions,
            ) = counts[start]
            merged[start] = bucket
            if bucket.final:
                self._remember((start, size_s, tuple(windows)), bucket)
        return merged

    def _remember(self, key: tuple, bucket: Bucket) -> None:
        self._cache[key] = bucket
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _read_live(
        self, window_starts: list[int], partitions: Iterable[int]
    ) -> dict[int, _LiveWindow]:
        partitions = list(partitions)
        if not window_starts:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for window_start in window_starts:
            for partition in partitions:
                counters, *hlls, pages, referrers = self.keys.window(partition, window_start)
                pipe.hgetall(counters)
                for key in hlls:
                    pipe.dump(key)
                pipe.zrevrange(pages, 0, TOP_KEPT - 1, withscores=True)
                pipe.zrevrange(referrers, 0, TOP_KEPT - 1, withscores=True)
        rows = iter(await pipe.execute())
        live = {}
        for window_start in window_starts:
            window = _LiveWindow(WindowSummary())
            pages, referrers = Counter(), Counter()
            for _ in partitions:
                _add_counters(window.summary, next(rows))
                for kind in HLL_KINDS:
                    if blob := next(rows):
                        window.dumps[kind].append(blob)
                for ranked, counts, floor in (
                    (next(rows), pages, "pages_floor"),
                    (next(rows), referrers, "referrers_floor"),
                ):
                    for member, score in ranked:
                        counts[member.decode()] += int(score)
                    if len(ranked) == TOP_KEPT:  # possibly truncated in this partition
                        setattr(
                            window.summary,
                            floor,
                            getattr(window.summary, floor) + int(ranked[-1][1]),
                        )
            window.summary.pages, window.summary.referrers = dict(pages), dict(referrers)
            live[window_start] = window
        return live

    async def _count(
        self, buckets: Mapping[int, list[tuple[str, int]]], live: Mapping[int, _LiveWindow]
    ) -> dict[int, tuple[int, ...]]:
        """PFCOUNT of each bucket's union per kind, in one transaction on the emission slot."""
        token = secrets.token_hex(6)
        pipe = self.redis.pipeline(transaction=True)
        scratch: dict[tuple[int, str], list[str]] = {}
        restored: list[str] = []
        for window_start, window in live.items():
            for kind, blobs in window.dumps.items():
                for blob in blobs:
                    key = self.keys.scratch(token, len(restored))
                    pipe.restore(key, SCRATCH_TTL_MS, blob, replace=True)
                    restored.append(key)
                    scratch.setdefault((window_start, kind), []).append(key)
        counted: list[tuple[int, str]] = []
        for start, windows in buckets.items():
            for index, kind in enumerate(HLL_KINDS):
                sources = []
                for origin, window_start in windows:
                    if origin == "final":
                        sources.append(self.keys.rollup_sketches(window_start)[index])
                    else:
                        sources += scratch.get((window_start, kind), [])
                if sources:
                    pipe.pfcount(*sources)
                    counted.append((start, kind))
        if restored:
            pipe.delete(*restored)
        results = await pipe.execute() if counted or restored else []
        by_bucket = dict(zip(counted, results[len(restored) :], strict=False))
        return {
            start: tuple(int(by_bucket.get((start, kind), 0)) for kind in HLL_KINDS)
            for start in buckets
        }


def _add_counters(summary: WindowSummary, row: Mapping[bytes, bytes]) -> None:
    """Add one partition's counters hash (apply_batch.lua's layout) to a summary."""
    for raw_field, raw_value in row.items():
        name, value = raw_field.decode(), int(raw_value)
        if name == EVENTS:
            summary.events += value
        elif name == DURATION:
            summary.duration_ms += value
        elif name == LATE:
            summary.late += value
        else:
            prefix, _, label = name.partition(":")
            breakdown = getattr(summary, BREAKDOWNS[prefix])
            breakdown[label] = breakdown.get(label, 0) + value


def _add_summary(bucket: Bucket, summary: WindowSummary) -> None:
    totals = bucket.totals
    totals.events += summary.events
    totals.duration_ms += summary.duration_ms
    totals.late += summary.late
    for name in ("event_types", "devices", "countries", "categories"):
        getattr(totals, name).update(getattr(summary, name))
    totals.pages.update(summary.pages)
    totals.referrers.update(summary.referrers)
    bucket.pages_undercount += summary.pages_floor
    bucket.referrers_undercount += summary.referrers_floor


def _totals(window_start: int, summary: WindowSummary, counts: tuple[int, ...]) -> WindowTotals:
    bucket = Bucket(window_start, window_start, WindowTotals(window_start))
    _add_summary(bucket, summary)
    (
        bucket.totals.unique_users,
        bucket.totals.unique_sessions,
        bucket.totals.cart_sessions,
        bucket.totals.purchase_sessions,
    ) = counts
    return bucket.totals
