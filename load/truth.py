"""Ground truth: the exact per-window aggregates a dataset must produce.

Computed straight from the dataset's records with the standard library's JSON
parser and plain sets and counters, on purpose independent of the processor and
the state store, so a bug there cannot hide itself here: from
statestore.metrics it takes only names (each record field and the event field
it reads), never code that computes. Whether the table reads the right event
field is pinned by tests/unit/test_metrics.py with hand-written expectations. Which records count is
decided by the planted `kind` (see load.generate): valid, out-of-order and late
events count in their event-time window; too-late events and malformed records
are expected in the DLQ, by reason (load.poison names the reason of each poison kind).

Field names follow WindowRecord. `top_pages` and `top_referrers` hold the full
counts (the verdict checks that a published top-N is a correct top-N, ties
included); unique counts are exact here and compared within HLL error.

Two documented rules of the record are applied here with this module's own code:
page URLs are counted up to their first `?` or `#` (the processor's default,
NORMALIZE_PAGE_URLS=true), and a breakdown with more than BREAKDOWN_TOP_N values
keeps the largest (ties by name) and puts the rest of the window's events under
OTHER.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from load.dataset import COUNTED_KINDS, EVENT_KINDS, LATE, TOO_LATE, Record
from load.poison import POISON_REASONS
from services.common.window_record import BREAKDOWN_TOP_N, OTHER, iso_utc, parse_iso
from statestore import METRICS, Kind

TRUTH_VERSION = 1
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
# Only names are taken from the metrics table: which event field each record
# field reads. The arithmetic (sets, counters, sums) is this module's own.
_DISTINCT = [metric for metric in METRICS if metric.kind is Kind.HLL]
_COUNTED = [metric for metric in METRICS if metric.kind in (Kind.BREAKDOWN, Kind.SORTED_SET)]
_DURATION = next(metric for metric in METRICS if metric.per_event)
_BREAKDOWNS = {metric.record_field for metric in METRICS if metric.kind is Kind.BREAKDOWN}
_URL_PATHS = {metric.record_field for metric in METRICS if metric.url_path_only}


class _WindowTally:
    """One window's exact aggregates, one entry per metric of the table."""

    def __init__(self) -> None:
        self.total_events = 0
        self.duration_sum_ms = 0
        self.late_planted = 0
        self.distinct: dict[str, set[str]] = {metric.record_field: set() for metric in _DISTINCT}
        self.counts: dict[str, Counter] = {metric.record_field: Counter() for metric in _COUNTED}

    def add(self, event: dict[str, Any], late: bool) -> None:
        self.total_events += 1
        self.duration_sum_ms += event[_DURATION.source]
        self.late_planted += late
        for metric in _DISTINCT:
            if metric.only_event_type in (None, event["event_type"]):
                self.distinct[metric.record_field].add(event[metric.source])
        for metric in _COUNTED:
            value = event[metric.source]
            if metric.record_field in _URL_PATHS:
                value = _QUERY_OR_FRAGMENT.split(value, maxsplit=1)[0]
            self.counts[metric.record_field][value] += 1

    def _published(self, name: str, counts: Counter) -> dict[str, int]:
        ranked = _sorted(counts)
        if name not in _BREAKDOWNS or len(ranked) <= BREAKDOWN_TOP_N:
            return ranked
        kept = dict(list(ranked.items())[:BREAKDOWN_TOP_N])
        return {**kept, OTHER: self.total_events - sum(kept.values())}

    def summary(self, window_start: int, window_seconds: int) -> dict[str, Any]:
        return {
            "window_start": iso_utc(window_start),
            "window_end": iso_utc(window_start + window_seconds),
            "total_events": self.total_events,
            _DURATION.record_field: round(self.duration_sum_ms / self.total_events, 1),
            **{name: len(members) for name, members in self.distinct.items()},
            **{name: self._published(name, counts) for name, counts in self.counts.items()},
            "duration_sum_ms": self.duration_sum_ms,
            "late_planted": self.late_planted,
        }


def _sorted(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


class TruthBuilder:
    """Accumulates the ground truth one record at a time (a dataset never sits in memory)."""

    def __init__(self, window_seconds: int):
        self.window_seconds = window_seconds
        self.windows: dict[int, _WindowTally] = {}
        self.dlq: Counter = Counter()
        self.planted: Counter = Counter()
        self.records = 0

    def add(self, record: Record) -> None:
        self.records += 1
        kind = record.kind
        if kind is None:
            raise ValueError("ground truth needs a generated dataset (records without `kind`)")
        self.planted[kind] += 1
        if kind in COUNTED_KINDS:
            event = json.loads(record.value)
            epoch = _epoch(event["timestamp"])
            start = int(epoch // self.window_seconds) * self.window_seconds
            self.windows.setdefault(start, _WindowTally()).add(event, kind == LATE)
        elif kind == TOO_LATE:
            self.dlq[TOO_LATE] += 1
        elif kind not in EVENT_KINDS:
            # Malformed kinds are named after their reason; poison kinds map to theirs.
            self.dlq[POISON_REASONS.get(kind, kind)] += 1

    def result(self, **facts: Any) -> dict[str, Any]:
        windows, window_seconds = self.windows, self.window_seconds
        return {
            "version": TRUTH_VERSION,
            **facts,
            "window_seconds": window_seconds,
            "shift_seconds": 0,
            "records": self.records,
            "counted_events": sum(tally.total_events for tally in windows.values()),
            "planted": dict(sorted(self.planted.items())),
            "dlq": dict(sorted(self.dlq.items())),
            "windows": {
                iso_utc(start): windows[start].summary(start, window_seconds)
                for start in sorted(windows)
            },
        }


def ground_truth(records: Iterable[Record], window_seconds: int, **facts: Any) -> dict[str, Any]:
    """Expected windows and DLQ counts of a generated dataset (records carry their kind)."""
    builder = TruthBuilder(window_seconds)
    for record in records:
        builder.add(record)
    return builder.result(**facts)


def _epoch(timestamp: str) -> float:
    # RFC 3339 with a Z; fromisoformat handles it from Python 3.11 on.
    return parse_iso(timestamp)


def shift(truth: dict[str, Any], seconds: int) -> dict[str, Any]:
    """The truth of the same dataset replayed with every valid event time moved by `seconds`.

    `seconds` must be a whole number of windows, so every event stays in the
    same position within its window and each window's aggregates are unchanged.
    """
    window_seconds = truth["window_seconds"]
    if seconds % window_seconds:
        raise ValueError(f"shift {seconds}s is not a whole number of {window_seconds}s windows")
    windows = {}
    for window in truth["windows"].values():
        start = parse_iso(window["window_start"]) + seconds
        moved = {
            **window,
            "window_start": iso_utc(start),
            "window_end": iso_utc(start + window_seconds),
        }
        windows[moved["window_start"]] = moved
    return {**truth, "shift_seconds": truth.get("shift_seconds", 0) + seconds, "windows": windows}


def write(path: Path, truth: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=1) + "\n")


def read(path: Path) -> dict[str, Any]:
    truth = json.loads(path.read_text())
    if truth.get("version") != TRUTH_VERSION:
        raise ValueError(f"{path}: unsupported ground-truth version {truth.get('version')!r}")
    return truth
