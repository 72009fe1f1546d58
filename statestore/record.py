"""The published record of a window, built from its merged state by the metrics table.

A record is bounded: breakdowns keep their top BREAKDOWN_TOP_N values plus OTHER,
sorted sets their top TOP_N, and `encode_window_record` checks the encoded size
against MAX_RECORD_BYTES, trimming further if a record of long names is still over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.logging import get_logger
from services.common.window_record import (
    BREAKDOWN_TOP_N,
    MAX_RECORD_BYTES,
    OTHER,
    TOP_N,
    WindowRecord,
    encode_record,
    iso_utc,
)
from statestore.metrics import METRICS, Kind, Metric
from statestore.types import WindowTotals

log = get_logger("statestore.record")

AVERAGE_DECIMALS = 1
CONVERSION_DECIMALS = 4
# Record fields derived from others: field -> (numerator, denominator) record fields.
CONVERSIONS = {
    "cart_conversion": ("cart_sessions", "unique_sessions"),
    "purchase_conversion": ("purchase_sessions", "unique_sessions"),
}


def build_record(
    totals: WindowTotals,
    window_seconds: int,
    *,
    revision: int,
    final: bool,
    published_at_s: float,
    breakdown_top_n: int = BREAKDOWN_TOP_N,
    top_n: int = TOP_N,
) -> WindowRecord:
    """A WindowRecord from a window's merged state: one field per metric, plus conversions."""
    fields = {
        metric.record_field: _published(metric, totals, breakdown_top_n, top_n)
        for metric in METRICS
    }
    for name, (numerator, denominator) in CONVERSIONS.items():
        fields[name] = _ratio(fields[numerator], fields[denominator], CONVERSION_DECIMALS)
    return WindowRecord(
        window_start=iso_utc(totals.window_start),
        window_end=iso_utc(totals.window_start + window_seconds),
        revision=revision,
        final=final,
        published_at=iso_utc(published_at_s),
        **fields,
    )


def encode_window_record(
    totals: WindowTotals,
    window_seconds: int,
    *,
    revision: int,
    final: bool,
    published_at_s: float,
    max_bytes: int = MAX_RECORD_BYTES,
) -> bytes:
    """The encoded record of a window, at most `max_bytes` long.

    A record of the usual limits is far below the bound; only very long names
    (URLs near 2 kB, escaped) can pass it. Then the breakdown and top limits are
    halved until it fits (at zero, every breakdown is one OTHER entry and the
    tops are empty, which always fits), and the trim is logged with the window.
    """
    breakdown_top_n, top_n = BREAKDOWN_TOP_N, TOP_N
    while True:
        record = build_record(
            totals,
            window_seconds,
            revision=revision,
            final=final,
            published_at_s=published_at_s,
            breakdown_top_n=breakdown_top_n,
            top_n=top_n,
        )
        encoded = encode_record(record)
        if len(encoded) <= max_bytes or breakdown_top_n == top_n == 0:
            break
        breakdown_top_n, top_n = breakdown_top_n // 2, top_n // 2
    if (breakdown_top_n, top_n) != (BREAKDOWN_TOP_N, TOP_N):
        log.warning(
            "window record over its size bound, trimmed",
            window_start=iso_utc(totals.window_start),
            revision=revision,
            bytes=len(encoded),
            max_bytes=max_bytes,
            breakdown_top_n=breakdown_top_n,
            top_n=top_n,
        )
    return encoded


def _published(metric: Metric, totals: WindowTotals, breakdown_top_n: int, top_n: int) -> Any:
    value = getattr(totals, metric.totals_attribute)
    if metric.per_event:
        return _ratio(value, totals.events, AVERAGE_DECIMALS)
    if metric.kind is Kind.BREAKDOWN:
        return _with_other(value, breakdown_top_n)
    if metric.kind is Kind.SORTED_SET:
        return _ranked(value, top_n)
    return value


def _ratio(numerator: int, denominator: int, decimals: int) -> float:
    return round(numerator / denominator, decimals) if denominator else 0.0


def _ranked(counts: Mapping[str, int], limit: int | None = None) -> dict[str, int]:
    """Highest count first, ties by name; zero counts left out."""
    ranked = sorted(
        ((name, count) for name, count in counts.items() if count), key=lambda kv: (-kv[1], kv[0])
    )
    return dict(ranked[:limit])


def _with_other(counts: Mapping[str, int], limit: int) -> dict[str, int]:
    """The top `limit` counts (as `_ranked`), and the rest summed under OTHER if any."""
    ranked = list(_ranked(counts).items())
    kept = dict(ranked[:limit])
    if len(ranked) > limit:
        kept[OTHER] = sum(count for _name, count in ranked[limit:])
    return kept
