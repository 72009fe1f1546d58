"""Ground truth: the exact per-window aggregates a dataset must produce.

Computed straight from the dataset's records with the standard library's JSON
parser and plain sets and counters; it imports nothing from the processor or
the state store, so a bug there cannot hide itself here. Which records count is
decided by the planted `kind` (see load.generate): valid, out-of-order and late
events count in their event-time window; too-late events and malformed records
are expected in the DLQ, by reason.

Field names follow WindowRecord. `top_pages` and `top_referrers` hold the full
counts (the verdict checks that a published top-N is a correct top-N, ties
included); unique counts are exact here and compared within HLL error.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load.dataset import COUNTED_KINDS, EVENT_KINDS, LATE, TOO_LATE, Record
from services.common.window_record import iso_utc, parse_iso

TRUTH_VERSION = 1


@dataclass
class _WindowTally:
    total_events: int = 0
    duration_sum_ms: int = 0
    late_planted: int = 0
    users: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    cart_sessions: set[str] = field(default_factory=set)
    purchase_sessions: set[str] = field(default_factory=set)
    event_types: Counter = field(default_factory=Counter)
    devices: Counter = field(default_factory=Counter)
    referrers: Counter = field(default_factory=Counter)
    pages: Counter = field(default_factory=Counter)
    countries: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)

    def add(self, event: dict[str, Any], late: bool) -> None:
        self.total_events += 1
        self.duration_sum_ms += event["duration_ms"]
        self.late_planted += late
        self.users.add(event["user_id"])
        self.sessions.add(event["session_id"])
        if event["event_type"] == "add_to_cart":
            self.cart_sessions.add(event["session_id"])
        elif event["event_type"] == "purchase":
            self.purchase_sessions.add(event["session_id"])
        self.event_types[event["event_type"]] += 1
        self.devices[event["device_type"]] += 1
        self.referrers[event["referrer"]] += 1
        self.pages[event["page_url"]] += 1
        self.countries[event["country"]] += 1
        self.categories[event["page_category"]] += 1

    def summary(self, window_start: int, window_seconds: int) -> dict[str, Any]:
        return {
            "window_start": iso_utc(window_start),
            "window_end": iso_utc(window_start + window_seconds),
            "total_events": self.total_events,
            "unique_users": len(self.users),
            "unique_sessions": len(self.sessions),
            "event_types": _sorted(self.event_types),
            "devices": _sorted(self.devices),
            "top_referrers": _sorted(self.referrers),
            "top_pages": _sorted(self.pages),
            "countries": _sorted(self.countries),
            "categories": _sorted(self.categories),
            "avg_duration_ms": round(self.duration_sum_ms / self.total_events, 1),
            "cart_sessions": len(self.cart_sessions),
            "purchase_sessions": len(self.purchase_sessions),
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
            self.dlq[kind] += 1

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
