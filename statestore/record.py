"""The published record of a window, built from its merged state by the metrics table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.window_record import TOP_N, WindowRecord, iso_utc
from statestore.metrics import METRICS, Kind, Metric
from statestore.types import WindowTotals

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
) -> WindowRecord:
    """A WindowRecord from a window's merged state: one field per metric, plus conversions."""
    fields = {metric.record_field: _published(metric, totals) for metric in METRICS}
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


def _published(metric: Metric, totals: WindowTotals) -> Any:
    value = getattr(totals, metric.totals_attribute)
    if metric.per_event:
        return _ratio(value, totals.events, AVERAGE_DECIMALS)
    if metric.kind is Kind.BREAKDOWN:
        return _ranked(value)
    if metric.kind is Kind.SORTED_SET:
        return _ranked(value, TOP_N)
    return value


def _ratio(numerator: int, denominator: int, decimals: int) -> float:
    return round(numerator / denominator, decimals) if denominator else 0.0


def _ranked(counts: Mapping[str, int], limit: int | None = None) -> dict[str, int]:
    """Highest count first, ties by name; zero counts left out."""
    ranked = sorted(
        ((name, count) for name, count in counts.items() if count), key=lambda kv: (-kv[1], kv[0])
    )
    return dict(ranked[:limit])
