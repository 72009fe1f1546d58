"""The plain-text block a pod's log shows, compared with stored expected output.

tests/fixtures/consumer_block_revision1.txt is the original example's dashboard
block (data-on-eks streaming pipeline docs, section 4) for its own example
window, plus our revision line; the amended block was checked by hand
(percentages of 3,037 events). Any change to the rendering fails here.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from services.common.window_record import WindowRecord
from services.consumer.text import render_block
from services.consumer.windows import WindowBook

FIXTURES = Path(__file__).parent.parent / "fixtures"


def original_example_window() -> WindowRecord:
    """The metrics record from the original example's documentation."""
    return WindowRecord(
        window_start="2024-10-26T10:30:00Z",
        window_end="2024-10-26T10:35:00Z",
        total_events=3000,
        unique_users=100,
        unique_sessions=684,
        event_types={
            "page_view": 582,
            "click": 659,
            "add_to_cart": 578,
            "search": 568,
            "purchase": 613,
        },
        devices={"mobile": 1013, "desktop": 996, "tablet": 991},
        top_referrers={"google.com": 642, "x.com": 603, "email": 599},
        top_pages={"/products/laptop": 251, "/blog": 242, "/contact": 240},
        avg_duration_ms=5162.0,
        published_at="2024-10-26T10:35:10Z",
    )


def test_first_revision_renders_the_original_block_with_a_revision_line():
    expected = (FIXTURES / "consumer_block_revision1.txt").read_text(encoding="utf-8")
    assert render_block(original_example_window()) == expected


def test_amended_final_revision_says_how_many_late_events_it_added():
    first = original_example_window()
    amended = msgspec.structs.replace(
        first,
        revision=2,
        final=True,
        total_events=3037,
        late_events=37,
        event_types={**first.event_types, "click": 696},
        devices={**first.devices, "mobile": 1050},
    )
    book = WindowBook()
    book.offer(first)
    update = book.offer(amended)
    expected = (FIXTURES / "consumer_block_revision2_amended.txt").read_text(encoding="utf-8")
    assert render_block(update.record, update.change, update.added_events) == expected


def test_equal_counts_are_listed_in_name_order_and_an_empty_window_has_no_division_by_zero():
    record = msgspec.structs.replace(
        original_example_window(),
        total_events=0,
        event_types={"search": 0, "click": 0},
        devices={},
        top_referrers={},
        top_pages={},
    )
    block = render_block(record)
    assert block.index("   click ") < block.index("   search ")
    assert "(  0.0%)" in block


def test_a_long_page_path_widens_its_section_and_keeps_the_numbers_aligned():
    record = msgspec.structs.replace(
        original_example_window(),
        top_pages={"/blog/holiday-gift-guide-2024": 300, "/blog": 242, "/contact": 240},
    )
    block = render_block(record)
    pages = block.split("📄 TOP PAGES:\n")[1].splitlines()[:3]
    assert pages[0] == "   /blog/holiday-gift-guide-2024   300 ( 10.0%)"
    assert len({line.index("(") for line in pages}) == 1
