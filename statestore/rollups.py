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
cached in process, keyed by the exact set of windows it merged. A bucket with
live windows is kept `live_cache_s` (1 s by default): however many readers ask,
live state is dumped and merged at most that often per process.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from statestore.keys import HLL_KINDS, Keys
from statestore.sketches import SCRATCH_TTL_MS, TOP_KEPT, WindowSummary, add_counters
from statestore.types import WindowTotals

BUCKET_CACHE_SIZE = 8192


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
    # A reader may memoize its rendering of a final (cached, unchanging) bucket here.
    rendered: bytes | None = None


@dataclass
class _LiveWindow:
    summary: WindowSummary
    dumps: dict[str, list[bytes]] = field(default_factory=lambda: {k: [] for k in HLL_KINDS})


class RollupReader:
    """Read side for the HTTP API (redis.asyncio)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        cache_size: int = BUCKET_CACHE_SIZE,
        live_cache_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.redis = client
        self.keys = keys
        self.cache_size = cache_size
        self.live_cache_s = live_cache_s
        self.clock = clock
        self._live: dict[tuple, tuple[float, Bucket]] = {}
        self._cache: OrderedDict[tuple, Bucket] = OrderedDict()
        # Summaries of final windows never change: kept for buckets still open.
        self._summaries: OrderedDict[int, WindowSummary] = OrderedDict()

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
        now = self.clock()
        self._live = {key: entry for key, entry in self._live.items() if entry[0] > now}
        for start, windows in members.items():
            key = (start, size_s, tuple(windows))
            if (cached := self._cache.get(key)) is not None:
                self._cache.move_to_end(key)
                done[start] = cached
            elif (live := self._live.get(key)) is not None:
                done[start] = live[1]
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
        summaries = await self._final_summaries(finals)
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
            elif self.live_cache_s > 0:
                self._live[(start, size_s, tuple(windows))] = (
                    self.clock() + self.live_cache_s,
                    bucket,
                )
        return merged

    async def _final_summaries(self, window_starts: list[int]) -> dict[int, WindowSummary]:
        missing = [ws for ws in window_starts if ws not in self._summaries]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for window_start in missing:
                pipe.hget(self.keys.published(window_start), "rollup")
            for window_start, raw in zip(missing, await pipe.execute(), strict=True):
                self._summaries[window_start] = (
                    WindowSummary.decode(raw) if raw else WindowSummary()
                )
        found = {}
        for window_start in window_starts:
            self._summaries.move_to_end(window_start)
            found[window_start] = self._summaries[window_start]
        while len(self._summaries) > self.cache_size:
            self._summaries.popitem(last=False)
        return found

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
                add_counters(window.summary, next(rows))
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
                    # Raw: a cluster pipeline refuses pfcount() even on keys of one slot.
                    pipe.execute_command("PFCOUNT", *sources)
                    counted.append((start, kind))
        if restored:
            pipe.delete(*restored)
        results = await pipe.execute() if counted or restored else []
        by_bucket = dict(zip(counted, results[len(restored) :], strict=False))
        return {
            start: tuple(int(by_bucket.get((start, kind), 0)) for kind in HLL_KINDS)
            for start in buckets
        }


def _add_summary(bucket: Bucket, summary: WindowSummary) -> None:
    totals = bucket.totals
    totals.events += summary.events
    totals.duration_ms += summary.duration_ms
    totals.late += summary.late
    totals.pages_overflow += summary.pages_overflow
    totals.referrers_overflow += summary.referrers_overflow
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
