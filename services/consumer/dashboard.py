"""The live full-screen view: rich renderables built from the dashboard's state.

`render` is a pure function of `DashboardState` and the clock, so the layout is
tested at fixed widths without a terminal. Sections follow the original
example (window, overview, event types, devices, top referrers, top pages),
with the window in progress beside the latest completed one, a history strip
and a status line. Every text cell is no-wrap with an ellipsis: a narrow
terminal crops, it never wraps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich import box
from rich.bar import Bar
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.common.window_record import WindowRecord, parse_iso
from services.consumer.sanitize import printable, printable_keys
from services.consumer.status import Reading, compact, describe_age
from services.consumer.text import percent, ranked
from services.consumer.windows import Change, Update, WindowBook

# Lines of each part of `render`: header, change line, overview row, event types
# and devices row, history strip, status line; the top lists take what is left.
_FIXED_LINES = 1 + 1 + 8 + 7 + 1
_HISTORY_LINES = 6
_MIN_TOP_ROWS = 3
_HISTORY_CELL = 6  # "HH:MM" or "3.0k" plus one space


@dataclass
class DashboardState:
    """Everything the view shows; the run loop updates it, `render` draws it."""

    topic: str
    window_seconds: int
    history: int
    book: WindowBook
    changes: dict[str, Update] = field(default_factory=dict)  # the last change per window
    last_update: Update | None = None
    last_update_at: float = 0.0
    backfill_done: bool = False
    topic_empty: bool = False
    live: Reading[WindowRecord] | None = None  # None: no live source configured
    consumer_lag: Reading[int] | None = None
    processor_lag: Reading[int] | None = None
    connected: bool = True
    connection_error: str = ""
    invalid_records: int = 0  # metrics records skipped as invalid since start
    started_at: float = field(default_factory=time.time)

    def apply(self, update: Update, at: float, announce: bool = True) -> None:
        """Remember an update; `announce` makes it the 'last change' line."""
        self.changes[update.record.window_start] = update
        for start in [s for s in self.changes if s < update.record.window_start]:
            if len(self.changes) <= self.book.keep:
                break
            del self.changes[start]
        if announce:
            self.last_update, self.last_update_at = update, at


def render(state: DashboardState, now: float, width: int = 80, height: int = 40) -> RenderableType:
    """The whole screen for a terminal of `width` x `height` cells."""
    latest = state.book.latest()
    # On a short terminal the history strip goes first, so the status line stays visible.
    spare = height - _FIXED_LINES - 2  # top lists' borders
    with_history = spare - _HISTORY_LINES >= _MIN_TOP_ROWS
    top_rows = max(1, min(10, spare - _HISTORY_LINES if with_history else spare))
    name_width = _name_width(width, latest)
    parts: list[RenderableType] = [_header(state, now), _change_line(state, now)]
    parts.append(_row(_latest_panel(state, latest), _live_panel(state, now)))
    if latest is not None:
        total = latest.total_events
        parts.append(
            _row(
                _counts_panel("Event types", latest.event_types, total, 5, name_width),
                _counts_panel("Devices", latest.devices, total, 5, name_width),
            )
        )
        parts.append(
            _row(
                _counts_panel("Top referrers", latest.top_referrers, total, top_rows, name_width),
                _counts_panel("Top pages", latest.top_pages, total, top_rows, name_width),
            )
        )
        if with_history:
            parts.append(_history_panel(state))
    parts.append(_status_line(state, now))
    return Group(*parts)


def _name_width(width: int, latest: WindowRecord | None) -> int:
    """Widest name cell that leaves a bar of at least 6 cells in a half-width panel."""
    inner = width // 2 - 4  # borders and padding
    count_width = len(f"{latest.total_events:,}") if latest else 5
    return max(8, min(30, inner - count_width - len("100.0%") - 3 - 6))


def _clock(iso: str, seconds: bool = False) -> str:
    moment = datetime.fromtimestamp(parse_iso(iso), UTC)
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def _span(record: WindowRecord) -> str:
    """'10:30 → 10:35 UTC'; with seconds when the window length is not whole minutes."""
    start, end = parse_iso(record.window_start), parse_iso(record.window_end)
    seconds = start % 60 != 0 or end % 60 != 0
    return f"{_clock(record.window_start, seconds)} → {_clock(record.window_end, seconds)} UTC"


def _header(state: DashboardState, now: float) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" CLICKSTREAM METRICS ", style="bold reverse")
    text.append(f"  {state.topic}", style="dim")
    clock = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    table = Table.grid(expand=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", no_wrap=True)
    table.add_row(text, Text(clock, style="dim"))
    return table


def _change_line(state: DashboardState, now: float) -> Text:
    update = state.last_update
    if update is None:
        if not state.backfill_done:
            return Text("Reading the metrics topic…", style="dim", no_wrap=True)
        message = "No window yet"
        if state.topic_empty:
            message = "The metrics topic is empty: waiting for the first window"
        return Text(message, style="yellow", no_wrap=True, overflow="ellipsis")
    record = update.record
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("Last change ", style="dim")
    text.append(f"{describe_age(now - state.last_update_at)} ago: ", style="dim")
    style = "bold yellow" if update.change in (Change.AMENDED, Change.CORRECTED) else "bold"
    text.append(f"window {_clock(record.window_start)} {update.describe()}", style)
    return text


def _overview(record: WindowRecord, partial: bool) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column(justify="right", no_wrap=True)
    suffix = " so far" if partial else ""
    table.add_row(f"Total events{suffix}", f"{record.total_events:,}")
    table.add_row("Unique users", f"{record.unique_users:,}")
    table.add_row("Unique sessions", f"{record.unique_sessions:,}")
    table.add_row("Avg duration", f"{record.avg_duration_ms:,.0f}ms")
    if not partial:
        table.add_row("Late events", f"{record.late_events:,}")
    return table


def _latest_panel(state: DashboardState, latest: WindowRecord | None) -> Panel:
    if latest is None:
        if not state.backfill_done:
            body: RenderableType = Text("Reading the latest windows…", style="dim")
        else:
            body = Text(
                f"No completed window on the topic yet. The processor publishes each "
                f"{state.window_seconds}s window shortly after it ends.",
                style="yellow",
            )
        return Panel(body, title="Latest window", title_align="left", height=8)
    update = state.changes.get(latest.window_start)
    change = update.change if update else None
    added = update.added_events if update else None
    revision = Text(no_wrap=True, overflow="ellipsis")
    revision.append(f"revision {latest.revision}", style="dim")
    if change is Change.AMENDED:
        late = f"+{added:,}" if added is not None else f"{latest.late_events:,}"
        revision.append(f" · amended {late} late", style="bold yellow")
    elif change is Change.CORRECTED:
        revision.append(" · corrected", style="bold yellow")
    if latest.final:
        revision.append(" · final", style="green")
    return Panel(
        Group(revision, _overview(latest, partial=False)),
        title=f"[bold]Window {_span(latest)}[/]",
        title_align="left",
        height=8,
        box=box.ROUNDED,
    )


def _live_panel(state: DashboardState, now: float) -> Panel:
    title = "[bold yellow]In progress · PARTIAL[/]"
    reading = state.live
    if reading is None:
        body: RenderableType = Text("No live source", style="dim")
    elif reading.at == 0:
        body = Text("Reading live state from Redis…", style="dim")
    elif reading.value is None:
        message = f"Redis: {reading.error}" if reading.error else "No window in progress"
        body = Text(message, style="red" if reading.error else "dim")
    else:
        record = reading.value
        start, end = parse_iso(record.window_start), parse_iso(record.window_end)
        elapsed = min(max(now - start, 0), end - start)
        progress = Table.grid(padding=(0, 1), expand=True)
        progress.add_column(no_wrap=True)
        progress.add_column(ratio=1)
        progress.add_column(no_wrap=True, justify="right")
        progress.add_row(
            Text(_span(record), style="yellow"),
            Bar(end - start, 0, elapsed, color="yellow"),
            f"{describe_age(elapsed)}",
        )
        stale = f" · {describe_age(now - reading.ok_at)} old" if reading.error else ""
        title = f"[bold yellow]In progress · PARTIAL{stale}[/]"
        body = Group(progress, _overview(record, partial=True))
    return Panel(body, title=title, title_align="left", height=8, border_style="yellow")


def _counts_panel(
    title: str, counts: dict[str, int], total: int, rows: int, name_width: int
) -> Panel:
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True, overflow="ellipsis", max_width=name_width)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(ratio=1, min_width=4)
    items = ranked(printable_keys(counts))[:rows]
    largest = items[0][1] if items else 1
    for name, count in items:
        table.add_row(
            Text(name),  # a Text, not a str: "[bold red]" in a page name is not markup
            f"{count:,}",
            f"{percent(count, total):5.1f}%",
            Bar(largest, 0, count, color="cyan"),
        )
    return Panel(table, title=title, title_align="left", height=rows + 2)


def _row(*panels: Panel) -> Table:
    height = max(panel.height or 0 for panel in panels) or None
    for panel in panels:
        panel.height = height
    table = Table.grid(expand=True)
    for _ in panels:
        table.add_column(ratio=1)
    table.add_row(*panels)
    return table


def _history_panel(state: DashboardState) -> Panel:
    windows = state.book.recent(state.history)
    strip = _HistoryStrip(windows)
    label = f"Last {len(windows)} windows" if len(windows) != 1 else "Last window"
    return Panel(strip, title=f"{label}: events / unique users", title_align="left", height=6)


class _HistoryStrip:
    """One column per window, newest right; as many as the width allows."""

    LEVELS = " ▁▂▃▄▅▆▇█"

    def __init__(self, windows: Sequence[WindowRecord]):
        self.windows = list(windows)

    def __rich_console__(self, console, options):
        fit = max(options.max_width // _HISTORY_CELL, 1)
        windows = self.windows[-fit:]
        if not windows:
            yield Text("No windows yet", style="dim")
            return
        largest = max(record.total_events for record in windows) or 1
        times, bars, events, users = (Text(no_wrap=True, overflow="crop") for _ in range(4))
        for record in windows:
            amended = record.revision > 1
            times.append(f"{_clock(record.window_start):>5} ", style="yellow" if amended else "dim")
            level = self.LEVELS[round(8 * record.total_events / largest)]
            bars.append(f"{level * 5:>5} ", style="cyan")
            events.append(f"{compact(record.total_events):>5} ")
            users.append(f"{compact(record.unique_users):>5} ", style="dim")
        yield from (times, bars, events, users)


def _status_line(state: DashboardState, now: float) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if state.connected:
        text.append("● connected", style="green")
    else:
        text.append("● disconnected", style="bold red")
        if state.connection_error:
            text.append(f" ({printable(state.connection_error)})", style="red")
    seen = state.last_update_at
    text.append(f" │ last update {describe_age(now - seen)} ago" if seen else " │ no update yet")
    text.append(f" │ lag {_lag(state.consumer_lag)}")
    text.append(f" │ processor lag {_lag(state.processor_lag)}")
    if state.invalid_records:
        text.append(f" │ {state.invalid_records:,} invalid skipped", style="yellow")
    text.append(" │ Ctrl-C quits", style="dim")
    return text


def _lag(reading: Reading[int] | None) -> str:
    if reading is None or (reading.value is None and not reading.error):
        return "unknown"
    if reading.value is None:
        return "?"
    return f"{reading.value:,}"
