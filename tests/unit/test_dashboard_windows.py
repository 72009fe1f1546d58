"""Revisions and duplicates: what the dashboard shows for each record of the metrics topic."""

from __future__ import annotations

import msgspec

from services.common.window_record import WindowRecord
from services.consumer.main import initial_updates
from services.consumer.reader import Backfill
from services.consumer.windows import Change, WindowBook


def window(
    minute: int,
    revision: int = 1,
    total: int = 1000,
    late: int = 0,
    final: bool = False,
    published_at: str = "",
) -> WindowRecord:
    return WindowRecord(
        window_start=f"2024-10-26T10:{minute:02d}:00Z",
        window_end=f"2024-10-26T10:{minute + 5:02d}:00Z",
        total_events=total,
        unique_users=100,
        unique_sessions=300,
        event_types={"click": total},
        devices={"mobile": total},
        top_referrers={"google.com": total},
        top_pages={"/": total},
        avg_duration_ms=1000.0,
        revision=revision,
        late_events=late,
        final=final,
        published_at=published_at,
    )


def test_the_same_revision_published_twice_is_shown_once():
    book = WindowBook()
    assert book.offer(window(30, published_at="2024-10-26T10:35:10Z")).change is Change.NEW
    # A crash during emission republishes with a new publication time only.
    assert book.offer(window(30, published_at="2024-10-26T10:35:12Z")) is None
    assert len(book) == 1


def test_an_amended_revision_replaces_the_figures_and_says_how_many_events_it_added():
    book = WindowBook()
    book.offer(window(30))
    update = book.offer(window(30, revision=2, total=1037, late=37))
    assert update.change is Change.AMENDED
    assert update.previous.total_events == 1000
    assert update.added_events == 37
    assert update.describe() == "revision 2, amended: +37 late events"
    assert book.latest().total_events == 1037


def test_an_amendment_seen_without_its_predecessor_reports_the_total_late_events():
    update = WindowBook().offer(window(30, revision=3, total=1100, late=100))
    assert update.change is Change.NEW
    assert update.describe() == "revision 3, 100 late events"


def test_a_final_revision_with_unchanged_figures_is_final_not_amended():
    book = WindowBook()
    book.offer(window(30))
    update = book.offer(window(30, revision=2, final=True))
    assert update.change is Change.FINAL
    assert update.describe() == "revision 2, final"


def test_an_older_revision_after_a_newer_one_changes_nothing():
    book = WindowBook()
    book.offer(window(30, revision=2, total=1037, late=37))
    assert book.offer(window(30, revision=1)) is None
    assert book.latest().revision == 2


def test_same_revision_with_different_content_is_shown_as_a_correction():
    book = WindowBook()
    book.offer(window(30))
    update = book.offer(window(30, total=999))
    assert update.change is Change.CORRECTED
    assert book.latest().total_events == 999


def test_book_keeps_the_newest_windows_and_ignores_older_ones_once_full():
    book = WindowBook(keep=3)
    for minute in (0, 5, 10, 15):
        book.offer(window(minute))
    assert [r.window_start[11:16] for r in book] == ["10:05", "10:10", "10:15"]
    assert book.offer(window(0)) is None
    assert [r.window_start[11:16] for r in book.recent(2)] == ["10:10", "10:15"]
    assert book.latest().window_start == "2024-10-26T10:15:00Z"


def test_start_shows_the_newest_revision_of_the_last_windows_in_window_order():
    # Partitions interleave: window 10:10 arrives before 10:05, revisions and a duplicate.
    records = [
        window(10),
        window(0),
        window(5),
        window(10, revision=2, total=1010, late=10),
        window(5),
        window(0, revision=2, final=True),
    ]
    shown = initial_updates(WindowBook(), Backfill(records=records), last=2, every_revision=False)
    assert [(u.record.window_start[11:16], u.record.revision) for u in shown] == [
        ("10:05", 1),
        ("10:10", 2),
    ]
    assert shown[1].change is Change.AMENDED


def test_from_beginning_shows_every_distinct_revision_once():
    records = [
        window(10),
        window(0),
        window(5),
        window(10, revision=2, total=1010, late=10),
        window(5),
        window(0, revision=2, final=True),
    ]
    shown = initial_updates(WindowBook(), Backfill(records=records), last=None, every_revision=True)
    assert [(u.record.window_start[11:16], u.record.revision) for u in shown] == [
        ("10:00", 1),
        ("10:00", 2),
        ("10:05", 1),
        ("10:10", 1),
        ("10:10", 2),
    ]


def test_content_ignores_publication_time_only():
    first = window(30, published_at="a")
    assert first.content() == msgspec.structs.replace(first, published_at="b").content()
    assert first.content() != msgspec.structs.replace(first, late_events=1).content()
