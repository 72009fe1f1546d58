"""What a final window keeps for rollups besides its record: a summary and its sketches.

The summary holds the window's counters and its TOP_KEPT most visited pages and
referrers, with the floor a left-out one stayed under (see rollups.py for the
error bound this gives). The sketches are the window's per-partition HLLs,
restored into scratch keys on the emission slot so that commit_revision.lua
can PFMERGE them into one copy per kind (the partitions live on other slots).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

import msgspec
import redis

from statestore.keys import HLL_KINDS, Keys
from statestore.metrics import BY_BREAKDOWN_PREFIX, BY_COUNTER_FIELD, WINDOW_KEY_SUFFIXES
from statestore.types import WindowTotals

TOP_KEPT = 100  # pages and referrers kept per window (and read per partition when live)
SCRATCH_TTL_MS = 60_000  # scratch keys outlive a caller that dies mid-way by this much


class WindowSummary(msgspec.Struct, kw_only=True):
    """What a rollup needs of a final window besides its sketches."""

    events: int = 0
    duration_ms: int = 0
    late: int = 0
    pages_overflow: int = 0  # events whose page a partition's capped set refused
    referrers_overflow: int = 0
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
            pages_overflow=totals.pages_overflow,
            referrers_overflow=totals.referrers_overflow,
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
    window_keys = dict(zip(WINDOW_KEY_SUFFIXES, keys.window(partition, window_start), strict=True))
    return tuple(window_keys[kind] for kind in HLL_KINDS)


def add_counters(summary: WindowSummary, row: Mapping[bytes, bytes]) -> None:
    """Add one partition's counters hash (apply_batch.lua's layout) to a summary."""
    for raw_field, raw_value in row.items():
        name, value = raw_field.decode(), int(raw_value)
        counter = BY_COUNTER_FIELD.get(name)
        if counter is not None:
            setattr(summary, counter.name, getattr(summary, counter.name) + value)
            continue
        prefix, _, label = name.partition(":")
        breakdown = getattr(summary, BY_BREAKDOWN_PREFIX[prefix].name)
        breakdown[label] = breakdown.get(label, 0) + value
