"""The verdict: a faithful record passes, and every kind of planted difference is reported."""

from __future__ import annotations

import msgspec
import pytest

from load import truth
from load.dataset import Record
from load.generate import Plan, generate
from load.verdict import (
    EXACT_FIELDS,
    IDENTITY_FIELDS,
    NOT_COMPARED,
    TOP_FIELDS,
    UNIQUE_FIELDS,
    DlqEntry,
    compare_dlq,
    compare_window,
    compare_windows,
    top_n_problem,
    unique_tolerance,
)
from services.common.window_record import TOP_N, WindowRecord


@pytest.fixture(scope="module")
def expected() -> dict:
    plan = Plan(
        events=6000,
        windows=3,
        window_seconds=10,
        grace_seconds=2,
        allowed_lateness_seconds=20,
        users=300,
        seed=5,
        malformed=0.02,
        too_late=0.01,
    )
    return truth.ground_truth(generate(plan), 10)


def faithful(window: dict, **changes) -> WindowRecord:
    """What a correct processor would publish for `window` as its final record."""
    fields = {name: window[name] for name in (*IDENTITY_FIELDS, *EXACT_FIELDS, *UNIQUE_FIELDS)}
    fields.update({name: dict(list(window[name].items())[:TOP_N]) for name in TOP_FIELDS})
    record = WindowRecord(**fields, revision=2, final=True)
    return msgspec.structs.replace(record, **changes)


def test_every_record_field_is_compared_or_has_a_reason_not_to_be():
    compared = [*IDENTITY_FIELDS, *EXACT_FIELDS, *UNIQUE_FIELDS, *TOP_FIELDS]
    assert len(compared) == len(set(compared)) and not set(compared) & set(NOT_COMPARED)
    uncovered = set(WindowRecord.__struct_fields__) - set(compared) - set(NOT_COMPARED)
    assert not uncovered, f"record fields neither compared nor excused: {sorted(uncovered)}"
    assert set(NOT_COMPARED) <= set(WindowRecord.__struct_fields__)


def test_the_truth_holds_every_compared_field(expected):
    window = next(iter(expected["windows"].values()))
    compared = {*IDENTITY_FIELDS, *EXACT_FIELDS, *UNIQUE_FIELDS, *TOP_FIELDS}
    assert compared <= set(window)


def test_faithful_final_records_pass(expected):
    records = [faithful(window) for window in expected["windows"].values()]
    verdict = compare_windows(expected, records)
    assert verdict.ok and verdict.checked == 3 and verdict.mismatches == []


def test_a_count_off_by_one_is_reported(expected):
    window = next(iter(expected["windows"].values()))
    got = faithful(window, total_events=window["total_events"] + 1)
    (mismatch,) = compare_window(window, got)
    assert (mismatch.field, mismatch.expected, mismatch.got) == (
        "total_events",
        window["total_events"],
        window["total_events"] + 1,
    )


def test_a_breakdown_with_one_event_moved_is_reported(expected):
    window = next(iter(expected["windows"].values()))
    devices = dict(window["devices"])
    devices["mobile"] -= 1
    devices["tablet"] += 1
    mismatches = compare_window(window, faithful(window, devices=devices))
    assert [m.field for m in mismatches] == ["devices"]


def test_average_duration_must_match_to_the_decimal(expected):
    window = next(iter(expected["windows"].values()))
    got = faithful(window, avg_duration_ms=window["avg_duration_ms"] + 0.1)
    assert [m.field for m in compare_window(window, got)] == ["avg_duration_ms"]


def test_unique_counts_pass_within_hll_error_and_fail_beyond(expected):
    window = next(iter(expected["windows"].values()))
    users = window["unique_users"]
    within = int(unique_tolerance(users))
    assert within == max(int(users * 4 * 0.0081), 3)
    assert compare_window(window, faithful(window, unique_users=users + within)) == []
    mismatches = compare_window(window, faithful(window, unique_users=users + within + 1))
    assert [m.field for m in mismatches] == ["unique_users"]


def test_top_n_is_checked_against_full_counts_with_ties_either_way():
    full = {"a": 5, "b": 3, "c": 3, "d": 1}
    assert top_n_problem(full, {"a": 5, "b": 3}, 2) == ""
    assert top_n_problem(full, {"a": 5, "c": 3}, 2) == ""  # tie at the cut: either is right
    assert "left out" in top_n_problem(full, {"a": 5, "d": 1}, 2)
    assert "wrong counts" in top_n_problem(full, {"a": 4, "b": 3}, 2)
    assert "entries" in top_n_problem(full, {"a": 5}, 2)


def test_a_missing_final_and_an_unexpected_window_are_reported(expected):
    first, second, third = expected["windows"].values()
    records = [
        faithful(first),
        faithful(second, final=False),
        faithful(third, window_start="2000-01-01T00:00:00Z"),
    ]
    verdict = compare_windows(expected, records)
    assert verdict.missing == [second["window_start"], third["window_start"]]
    assert verdict.unexpected == ["2000-01-01T00:00:00Z"]
    assert not verdict.ok


def test_repeated_identical_finals_pass_but_different_finals_fail(expected):
    windows = list(expected["windows"].values())
    records = [faithful(window) for window in windows]
    records.append(faithful(windows[0], published_at="2030-01-01T00:00:00Z"))
    assert compare_windows(expected, records).ok
    records.append(faithful(windows[0], revision=3, late_events=1))
    verdict = compare_windows(expected, records)
    assert [m.field for m in verdict.mismatches] == ["final"]


def _entry(reason: str, partition: int, offset: int, value: bytes = b"x") -> DlqEntry:
    return DlqEntry(reason, partition, offset, b"k", value)


def test_dlq_counts_distinct_source_records_per_reason():
    entries = [_entry("not_json", 0, 1), _entry("not_json", 0, 1), _entry("too_late", 2, 7)]
    verdict = compare_dlq({"not_json": 1, "too_late": 1}, entries)
    assert verdict.ok and verdict.distinct == 2 and verdict.records == 3


def test_dlq_missing_extra_and_inconsistent_repeats_are_reported():
    entries = [_entry("not_json", 0, 1), _entry("empty", 0, 1, b""), _entry("too_late", 1, 3)]
    verdict = compare_dlq({"not_json": 2}, entries)
    fields = {m.field for m in verdict.mismatches}
    assert fields == {"source 0/1", "not_json", "too_late"}


def test_truth_and_verdict_agree_on_the_record_format():
    # The truth's window keys are what a processor uses as window_start.
    records = [
        Record(
            b"u",
            b'{"timestamp":"2024-01-01T00:00:05Z","user_id":"u",'
            b'"session_id":"s","event_type":"click","page_url":"/",'
            b'"page_category":"home","referrer":"direct","device_type":"mobile",'
            b'"country":"US","duration_ms":10,"event_id":"e"}',
            1704067205.0,
            1704067205.0,
            "valid",
        )
    ]
    expected = truth.ground_truth(records, 10)
    (window,) = expected["windows"].values()
    assert window["window_start"] == "2024-01-01T00:00:00Z"
    assert compare_windows(expected, [faithful(window)]).ok
