"""The plain-text block per window revision, in the original example's layout.

This is what a pod's log shows (`kubectl logs`): no colours, no cursor
movement, one block per revision. It adds a revision line to the original's
layout so a reader of the log knows which figures replace which.
"""

from __future__ import annotations

from services.common.window_record import WindowRecord
from services.consumer.sanitize import printable_keys
from services.consumer.windows import Change, describe_revision

RULE = "=" * 80


def ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Highest count first; equal counts in name order so the output is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def percent(count: int, total: int) -> float:
    return 100.0 * count / total if total else 0.0


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
        f"   {'Total Events:':<18}{total:,}",
        f"   {'Unique Users:':<18}{record.unique_users:,}",
        f"   {'Unique Sessions:':<18}{record.unique_sessions:,}",
        f"   {'Avg Duration:':<18}{record.avg_duration_ms:,.0f}ms",
    ]
    if record.late_events:
        lines.append(f"   {'Late Events:':<18}{record.late_events:,}")
    sections = (
        ("🔹 EVENT TYPES:", record.event_types, 15, 7),
        ("📱 DEVICES:", record.devices, 15, 7),
        ("🔗 TOP REFERRERS:", record.top_referrers, 20, 5),
        ("📄 TOP PAGES:", record.top_pages, 20, 5),
    )
    for title, counts, name_width, count_width in sections:
        counts = printable_keys(counts)  # names come from strangers' events
        # Long names (page paths) widen their section so its numbers stay in one column.
        name_width = max([name_width] + [len(name) + 1 for name in counts])
        lines += ["", title]
        for name, count in ranked(counts):
            lines.append(
                f"   {name:<{name_width}}{count:>{count_width},} ({percent(count, total):5.1f}%)"
            )
    lines.append(RULE)
    return "\n".join(lines) + "\n"
