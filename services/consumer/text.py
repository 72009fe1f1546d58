"""The plain-text block per window revision, in the original example's layout.

This is what a pod's log shows (`kubectl logs`): no colours, no cursor
movement, one block per revision. It adds a revision line to the original's
layout so a reader of the log knows which figures replace which.
"""

from __future__ import annotations

from services.common.window_record import WindowRecord
from services.consumer.sanitize import printable_keys
from services.consumer.windows import Change, describe_revision
from statestore import Display, Metric
from statestore.metrics import shown

RULE = "=" * 80
# The overview's figures and the count sections, in the metrics table's order.
OVERVIEW = shown(Display.OVERVIEW, Display.LATE_OVERVIEW)
SECTIONS = shown(Display.BREAKDOWN, Display.TOP)
_OVERVIEW_LABEL_WIDTH = 18
_SECTION_WIDTHS = {Display.BREAKDOWN: (15, 7), Display.TOP: (20, 5)}  # name, count columns
_ICONS = {"event_types": "🔹", "devices": "📱", "top_referrers": "🔗", "top_pages": "📄"}
_DEFAULT_ICON = "🔸"


def ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Highest count first; equal counts in name order so the output is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def percent(count: int, total: int) -> float:
    return 100.0 * count / total if total else 0.0


def overview_value(metric: Metric, record: WindowRecord) -> str:
    """An overview figure as both views show it: thousands separated, averages whole."""
    value = getattr(record, metric.record_field)
    figure = f"{value:,.0f}" if metric.per_event else f"{value:,}"
    return figure + metric.unit


def render_block(
    record: WindowRecord, change: Change | None = None, added_events: int | None = None
) -> str:
    """The original's dashboard block for one window revision, newline-terminated."""
    total = record.total_events
    lines = [
        RULE,
        "📊 CLICKSTREAM METRICS",
        RULE,
        f"⏰ Window: {record.window_start} → {record.window_end}",
        f"🔁 {describe_revision(record, change, added_events).capitalize()}",
        "",
        "📈 OVERVIEW:",
    ]
    for metric in OVERVIEW:
        if metric.display is Display.LATE_OVERVIEW and not getattr(record, metric.record_field):
            continue
        lines.append(
            f"   {metric.label + ':':<{_OVERVIEW_LABEL_WIDTH}}{overview_value(metric, record)}"
        )
    for metric in SECTIONS:
        counts = printable_keys(getattr(record, metric.record_field))  # names from strangers
        name_width, count_width = _SECTION_WIDTHS[metric.display]
        # Long names (page paths) widen their section so its numbers stay in one column.
        name_width = max([name_width] + [len(name) + 1 for name in counts])
        lines += ["", f"{_ICONS.get(metric.record_field, _DEFAULT_ICON)} {metric.label.upper()}:"]
        for name, count in ranked(counts):
            lines.append(
                f"   {name:<{name_width}}{count:>{count_width},} ({percent(count, total):5.1f}%)"
            )
    lines.append(RULE)
    return "\n".join(lines) + "\n"
