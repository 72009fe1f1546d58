"""Ground truth and dataset generation: exact, independent, and consistent with the schema."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from load import dataset, truth
from load.dataset import COUNTED_KINDS, Record
from load.generate import MALFORMED_KINDS, Plan, generate, write_dataset
from services.common.schema import InvalidEvent, decode_event

W = 10


def _event(
    user: str,
    session: str,
    second: float,
    event_type: str = "page_view",
    page: str = "/",
    referrer: str = "direct",
    duration: int = 100,
) -> bytes:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(second, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "event_id": f"{user}-{second}",
            "timestamp": stamp,
            "user_id": user,
            "session_id": session,
            "event_type": event_type,
            "page_url": page,
            "page_category": "home",
            "referrer": referrer,
            "device_type": "mobile",
            "country": "US",
            "duration_ms": duration,
        }
    ).encode()


def test_hand_made_records_give_the_aggregates_counted_by_hand():
    base = 1_700_000_000  # a multiple of 10: the first window starts here
    records = [
        Record(b"u1", _event("u1", "s1", base + 1, duration=100), base + 1, base + 1, "valid"),
        Record(
            b"u1",
            _event("u1", "s1", base + 2, "add_to_cart", "/p", duration=201),
            base + 2,
            base + 2,
            "valid",
        ),
        Record(
            b"u2",
            _event("u2", "s2", base + 3, "purchase", "/checkout", "google.com"),
            base + 3,
            base + 4,
            "out_of_order",
        ),
        # late: arrives in the second window but belongs to the first
        Record(b"u3", _event("u3", "s3", base + 9.5, "click"), base + 9.5, base + 15, "late"),
        Record(b"u1", _event("u1", "s4", base + 12), base + 12, base + 12, "valid"),
        Record(b"u4", _event("u4", "s5", base - 86400 * 2), None, base + 16, "too_late"),
        Record(b"u5", b"", None, base + 17, "empty"),
        Record(b"u5", b"{not json", None, base + 18, "not_json"),
    ]
    expected = truth.ground_truth(records, W)
    first, second = expected["windows"].values()
    assert first["window_start"] == "2023-11-14T22:13:20Z"
    assert first["window_end"] == "2023-11-14T22:13:30Z"
    assert first["total_events"] == 4
    assert first["unique_users"] == 3 and first["unique_sessions"] == 3
    assert first["event_types"] == {"add_to_cart": 1, "click": 1, "page_view": 1, "purchase": 1}
    assert first["top_pages"] == {"/": 2, "/checkout": 1, "/p": 1}
    assert first["top_referrers"] == {"direct": 3, "google.com": 1}
    assert first["cart_sessions"] == 1 and first["purchase_sessions"] == 1
    assert first["avg_duration_ms"] == round((100 + 201 + 100 + 100) / 4, 1)
    assert first["late_planted"] == 1
    assert second["total_events"] == 1 and second["unique_users"] == 1
    assert expected["dlq"] == {"empty": 1, "not_json": 1, "too_late": 1}
    assert expected["counted_events"] == 5 and expected["records"] == 8


def test_records_without_a_planted_kind_are_refused():
    with pytest.raises(ValueError, match="generated dataset"):
        truth.ground_truth([Record(b"k", b"{}", None, 0.0, None)], W)


@pytest.fixture(scope="module")
def planted() -> tuple[Plan, list[Record]]:
    plan = Plan(
        events=20_000,
        windows=6,
        window_seconds=W,
        grace_seconds=2,
        allowed_lateness_seconds=20,
        users=500,
        seed=3,
        out_of_order=0.1,
        late=0.05,
        too_late=0.01,
        malformed=0.02,
    )
    return plan, list(generate(plan))


def test_generation_is_deterministic_for_a_plan(planted):
    plan, records = planted
    again = list(generate(plan))
    assert [(r.key, r.value, r.kind) for r in again] == [(r.key, r.value, r.kind) for r in records]


def test_every_kind_is_planted_and_arrivals_never_go_backwards(planted):
    _plan, records = planted
    kinds = Counter(record.kind for record in records)
    assert set(kinds) == {*COUNTED_KINDS, "too_late", *MALFORMED_KINDS}
    arrivals = [record.arrival for record in records]
    assert arrivals == sorted(arrivals)


def test_planted_malformed_records_are_rejected_by_the_schema_for_their_reason(planted):
    _plan, records = planted
    for record in records:
        if record.kind in MALFORMED_KINDS:
            with pytest.raises(InvalidEvent) as rejected:
                decode_event(record.value)
            assert rejected.value.reason == record.kind
        else:
            event = decode_event(record.value)
            assert event.timestamp.timestamp() == pytest.approx(record.event_time, abs=1e-6)


def test_disorder_stays_inside_the_bounds_that_make_the_truth_exact(planted):
    plan, records = planted
    low, high = plan.late_range
    first_window = plan.first_window
    for record in records:
        if record.kind in COUNTED_KINDS:
            behind = record.arrival - record.event_time
            assert first_window <= record.event_time < first_window + plan.span
            if record.kind == "out_of_order":
                assert 0 < behind < plan.grace_seconds / 2 + 1e-6
            elif record.kind == "late":
                assert low - 1e-6 <= behind <= high + 1e-6
                assert behind < plan.allowed_lateness_seconds / 2 + 1e-6
        elif record.kind == "too_late":
            assert record.arrival - record.event_time >= 2 * 86400
            assert record.arrival >= first_window + 0.1 * plan.span


def test_truth_matches_an_independent_recount_of_the_decoded_events(planted):
    plan, records = planted
    expected = truth.ground_truth(records, W)
    per_window: dict[int, list] = {}
    for record in records:
        if record.kind in COUNTED_KINDS:
            event = decode_event(record.value)  # the shared schema, a second opinion
            start = int(event.timestamp.timestamp() // W) * W
            per_window.setdefault(start, []).append(event)
    assert len(expected["windows"]) == plan.windows == len(per_window)
    for window, events in zip(
        expected["windows"].values(), sorted(per_window.items()), strict=True
    ):
        _start, events = events
        assert window["total_events"] == len(events)
        assert window["unique_users"] == len({e.user_id for e in events})
        assert window["unique_sessions"] == len({e.session_id for e in events})
        assert window["devices"] == dict(Counter(e.device_type for e in events))
        assert window["avg_duration_ms"] == round(
            sum(e.duration_ms for e in events) / len(events), 1
        )
    malformed = Counter(r.kind for r in records if r.kind in MALFORMED_KINDS)
    assert expected["dlq"] == {
        **malformed,
        "too_late": Counter(r.kind for r in records)["too_late"],
    }


def test_shifting_by_whole_windows_moves_only_the_window_keys(planted):
    _plan, records = planted
    expected = truth.ground_truth(records, W)
    moved = truth.shift(expected, 3 * W)
    assert moved["shift_seconds"] == 3 * W
    for before, after in zip(expected["windows"].values(), moved["windows"].values(), strict=True):
        assert (
            truth.parse_iso(after["window_start"])
            == truth.parse_iso(before["window_start"]) + 3 * W
        )
        assert {k: v for k, v in after.items() if not k.startswith("window_")} == {
            k: v for k, v in before.items() if not k.startswith("window_")
        }
    with pytest.raises(ValueError, match="whole number"):
        truth.shift(expected, W + 1)


def test_written_dataset_and_truth_read_back_identically(tmp_path):
    plan = Plan(
        events=3000,
        windows=3,
        window_seconds=W,
        grace_seconds=2,
        allowed_lateness_seconds=20,
        users=50,
        seed=9,
        malformed=0.05,
        too_late=0.01,
    )
    path = tmp_path / "d.jsonl.gz"
    written_truth = write_dataset(plan, path)
    assert truth.read(dataset.truth_path(path)) == json.loads(json.dumps(written_truth))
    assert truth.ground_truth(dataset.read(path), W)["windows"] == written_truth["windows"]


def test_truth_counts_pages_without_query_and_keeps_the_top_categories_plus_other():
    base = 1_700_000_000
    records = []
    for n in range(60):
        fields = json.loads(_event(f"u{n}", f"s{n}", base + n / 10, page=f"/p?id={n}#f"))
        fields["page_category"] = f"cat-{n % 55:02d}"  # 55 categories: 5 of them twice
        records.append(Record(None, json.dumps(fields).encode(), base, base, "valid"))
    window = truth.ground_truth(records, W)["windows"]["2023-11-14T22:13:20Z"]
    assert window["top_pages"] == {"/p": 60}
    categories = window["categories"]
    assert len(categories) == 51 and sum(categories.values()) == 60
    twice = {f"cat-{n:02d}": 2 for n in range(5)}
    assert dict(list(categories.items())[:5]) == twice
    assert categories[""] == 60 - 10 - 45  # the 10 events of the five doubles, 45 singles kept
