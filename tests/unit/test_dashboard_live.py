"""The live view at the widths people use: nothing wraps or overflows, every section is there."""

from __future__ import annotations

import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from services.common.window_record import iso_utc, parse_iso
from services.consumer.dashboard import DashboardState, render
from services.consumer.status import Reading, compact, describe_age
from services.consumer.text import OVERVIEW
from services.consumer.windows import WindowBook
from statestore import Display
from tests.unit.test_dashboard_windows import window

NOW = parse_iso("2024-10-26T11:12:30Z")


def screen(state: DashboardState, width: int, height: int = 40) -> list[str]:
    console = Console(
        width=width,
        height=height,
        record=True,
        color_system=None,
        force_terminal=True,
        legacy_windows=False,
    )
    console.print(render(state, NOW, width, height))
    return console.export_text(styles=False).rstrip("\n").split("\n")


def busy_state() -> DashboardState:
    book = WindowBook(keep=50)
    state = DashboardState(
        topic="clickstream-metrics", window_seconds=300, history=12, book=book, backfill_done=True
    )
    long_pages = {f"/products/a-very-long-product-name-number-{i}": 2000 - i for i in range(10)}
    for index in range(14):
        record = window(0, total=12_345 + index)
        start = parse_iso("2024-10-26T10:00:00Z") + index * 300
        record.window_start, record.window_end = iso_utc(start), iso_utc(start + 300)
        record.top_pages = long_pages
        record.top_referrers = {"a-very-long-referrer-domain.example.org": 5000, "x.com": 10}
        state.apply(book.offer(record), NOW - 100)
    newest = book.latest()
    amended = window(0, revision=2, total=newest.total_events + 37, late=37)
    amended.window_start, amended.window_end = newest.window_start, newest.window_end
    amended.top_pages, amended.top_referrers = newest.top_pages, newest.top_referrers
    state.apply(book.offer(amended), NOW - 3)
    live = window(0, total=4_321)
    live.window_start, live.window_end = "2024-10-26T11:10:00Z", "2024-10-26T11:15:00Z"
    live.revision = 0
    state.live = Reading(live, "", NOW, NOW)
    state.consumer_lag = Reading(0, "", NOW, NOW)
    state.processor_lag = Reading(1234, "", NOW, NOW)
    return state


@pytest.mark.parametrize("width", [80, 120])
def test_live_view_fits_the_terminal_without_wrapping(width):
    lines = screen(busy_state(), width)
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide
    assert len(lines) <= 40
    text = "\n".join(lines)
    for section in (
        "Window 11:05 → 11:10 UTC",
        "In progress · PARTIAL",
        "Event types",
        "Devices",
        "Top referrers",
        "Top pages",
        "Last 12 windows",
    ):
        assert section in text
    # Boxes close on the line they open: a wrapped cell would break the right border.
    assert all(line.endswith(("╮", "│", "╯")) for line in lines[2:-1])


def test_a_short_terminal_drops_the_history_strip_and_keeps_the_status_line():
    lines = screen(busy_state(), 80, height=24)
    assert len(lines) <= 24
    assert lines[-1].startswith("● connected")
    assert not any("Last 12 windows" in line for line in lines)
    assert any("Top pages" in line for line in lines)


def test_live_view_marks_the_partial_window_and_the_amendment():
    text = "\n".join(screen(busy_state(), 80))
    assert "revision 2 · amended +37 late" in text
    assert "Last change 3s ago: window 11:05 revision 2, amended: +37 late events" in text
    assert "Total events so far" in text and "4,321" in text
    assert re.search(r"lag 0 │ processor lag 1,234", text)


def test_a_lost_broker_shows_in_the_status_line_without_overflowing():
    state = busy_state()
    state.connected = False
    state.connection_error = "GroupCoordinator: 127.0.0.1:9092: Connect failed: Connection refused"
    last = screen(state, 80)[-1]
    assert last.startswith("● disconnected (GroupCoordinator") and cell_len(last) <= 80


def test_history_strip_shows_the_last_windows_oldest_first():
    lines = screen(busy_state(), 80)
    strip = next(line for line in lines if "10:10  10:15" in line or "10:10 10:15" in line)
    times = re.findall(r"\d\d:\d\d", strip)
    assert times == [f"{10 + m // 60}:{m % 60:02d}" for m in range(10, 70, 5)]


def test_empty_topic_says_so_instead_of_showing_nothing():
    state = DashboardState(
        topic="clickstream-metrics",
        window_seconds=300,
        history=12,
        book=WindowBook(),
        backfill_done=True,
        topic_empty=True,
    )
    text = "\n".join(screen(state, 80))
    assert "The metrics topic is empty: waiting for the first window" in text
    assert "no update yet" in text


def test_compact_numbers_and_ages_fit_their_cells():
    assert [compact(n) for n in (7, 999, 3_000, 12_345, 1_234_567)] == [
        "7",
        "999",
        "3.0k",
        "12k",
        "1.2M",
    ]
    assert [describe_age(s) for s in (3, 65, 7260)] == ["3s", "1m 05s", "2h 01m"]


def test_every_overview_figure_of_the_metrics_table_has_a_row_in_both_window_panels():
    text = "\n".join(screen(busy_state(), 120))
    for metric in OVERVIEW:
        label = metric.label.capitalize()
        expected = 1 if metric.display is Display.LATE_OVERVIEW else 2  # latest and live
        assert text.count(label) == expected, f"{label} cropped off a window panel"
