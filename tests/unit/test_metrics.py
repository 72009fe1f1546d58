"""The metrics table, and everything that must agree with it.

Expectations here are written by hand, not derived from the table: a row that
reads the wrong event field, or two kinds swapped in the key layout, fails.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources

import fakeredis
import pytest

from services.common.schema import ClickEvent
from services.common.window_record import WindowRecord
from services.common.windowing import Windowing
from services.processor.fold import fold
from statestore import METRICS, StateStore, build_record
from statestore.codec import (
    APPLY_ARGV,
    APPLY_KEYS,
    CLAIM_ARGV,
    CLAIM_KEYS,
    COMMIT_ARGV,
    COMMIT_KEYS,
    KEEP_ARGV,
    KEEP_KEYS,
    LEASE_ARGV,
    LEASE_KEYS,
    SEAL_ARGV,
    SEAL_KEYS,
)
from statestore.metrics import REFUSED_BY_CAP, WINDOW_KEY_SUFFIXES, Kind
from statestore.record import CONVERSIONS

WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040  # a window start


def click(n, user, session, event_type, page, referrer, device, country, category, duration):
    return ClickEvent(
        event_id=f"e{n}",
        timestamp=datetime.fromtimestamp(T0 + n, UTC),
        user_id=user,
        session_id=session,
        event_type=event_type,
        page_url=page,
        page_category=category,
        referrer=referrer,
        device_type=device,
        country=country,
        duration_ms=duration,
    )


# Every attribute has its own number of distinct values, so a metric fed from
# the wrong attribute gets a different figure.
EVENTS = [
    click(1, "u1", "s1", "add_to_cart", "/a", "r1", "mobile", "US", "c1", 10),
    click(2, "u1", "s2", "add_to_cart", "/b", "r1", "desktop", "US", "c1", 20),
    click(3, "u2", "s3", "add_to_cart", "/a", "r2", "mobile", "DE", "c1", 30),
    click(4, "u2", "s4", "purchase", "/a", "r1", "mobile", "US", "c2", 40),
    click(5, "u2", "s5", "page_view", "/a", "r1", "mobile", "US", "c1", 50),
    click(6, "u2", "s5", "click", "/c", "r1", "mobile", "FR", "c1", 60),
]


def test_each_metric_reads_its_own_event_field_through_fold_redis_and_the_record():
    store = StateStore(fakeredis.FakeRedis(), "metrics", "events")
    folded = fold(EVENTS, None, -1, WINDOWING)
    store.apply_batch(0, -1, 0, 5, folded.deltas, folded.watermark_s, {}, now_ms=1)
    totals = store.read_window(T0, [0])
    record = build_record(totals, 60, revision=1, final=False, published_at_s=T0 + 70)
    assert (record.total_events, record.avg_duration_ms, record.late_events) == (6, 35.0, 0)
    assert record.unique_users == 2
    assert record.unique_sessions == 5
    assert record.cart_sessions == 3
    assert record.purchase_sessions == 1
    assert record.event_types == {"add_to_cart": 3, "click": 1, "page_view": 1, "purchase": 1}
    assert record.devices == {"mobile": 5, "desktop": 1}
    assert record.countries == {"US": 4, "DE": 1, "FR": 1}
    assert record.categories == {"c1": 5, "c2": 1}
    assert record.top_pages == {"/a": 4, "/b": 1, "/c": 1}
    assert record.top_referrers == {"r1": 5, "r2": 1}
    assert (record.cart_conversion, record.purchase_conversion) == (0.6, 0.2)


def test_todays_redis_key_layout_is_kept():
    assert {"n", "u", "s", "sc", "sp", "pg", "rf"} <= set(WINDOW_KEY_SUFFIXES)
    assert WINDOW_KEY_SUFFIXES[0] == "n"
    fields = {m.name: m.field for m in METRICS}
    assert (
        fields.items()
        >= {
            "events": "events",
            "duration_ms": "duration_ms",
            "late": "late",
            "event_types": "et",
            "devices": "dev",
            "countries": "cc",
            "categories": "cat",
            "users": "u",
            "sessions": "s",
            "cart_sessions": "sc",
            "purchase_sessions": "sp",
            "pages": "pg",
            "referrers": "rf",
        }.items()
    )


def test_every_record_field_comes_from_the_table_or_is_named_elsewhere():
    from_table = [metric.record_field for metric in METRICS]
    assert len(from_table) == len(set(from_table))
    assert set(from_table) <= set(WindowRecord.__struct_fields__)
    metadata = {"window_start", "window_end", "revision", "final", "published_at"}
    rest = set(WindowRecord.__struct_fields__) - set(from_table) - set(CONVERSIONS) - metadata
    assert not rest, f"record fields nothing builds: {sorted(rest)}"


def test_window_key_suffixes_are_distinct_and_counter_fields_do_not_collide():
    assert len(WINDOW_KEY_SUFFIXES) == len(set(WINDOW_KEY_SUFFIXES))
    hash_fields = [m.field for m in METRICS if m.kind in (Kind.COUNTER, Kind.BREAKDOWN)]
    assert len(hash_fields) == len(set(hash_fields))


def _script_locals(source: str, array: str) -> dict[str, int]:
    pattern = rf"local (\w+) = (?:tonumber\()?{array}\[(\d+)\]"
    found = {name: int(index) for name, index in re.findall(pattern, source)}
    for names, indexes in re.findall(
        rf"local ([\w, ]+) = ({array}\[\d+\](?:, {array}\[\d+\])+)", source
    ):
        for name, index in zip(names.split(", "), re.findall(r"\[(\d+)\]", indexes), strict=True):
            found[name] = int(index)
    return found


SCRIPTS = {
    "apply_batch.lua": (APPLY_KEYS, APPLY_ARGV),
    "claim_revision.lua": (CLAIM_KEYS, CLAIM_ARGV),
    "commit_revision.lua": (COMMIT_KEYS, COMMIT_ARGV),
    "seal_window.lua": (SEAL_KEYS, SEAL_ARGV),
    "emitter_lease.lua": (LEASE_KEYS, LEASE_ARGV),
    "keep_sketches.lua": (KEEP_KEYS, KEEP_ARGV),
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_reads_its_keys_and_arguments_where_the_codec_puts_them(script):
    source = resources.files("statestore").joinpath("scripts", script).read_text()
    keys, argv = SCRIPTS[script]
    for array, names in (("KEYS", keys), ("ARGV", argv)):
        expected = {name: index for index, name in enumerate(names, start=1)}
        assert _script_locals(source, array) == expected, array
        header = re.findall(rf"^-- {array}\[(\d+)\]\s+(\w+):", source, re.M)
        assert {name: int(index) for index, name in header} == expected, f"{array} header"


def test_apply_script_skips_exactly_its_fixed_arguments():
    source = resources.files("statestore").joinpath("scripts", "apply_batch.lua").read_text()
    assert re.search(rf"local HEADER = {len(APPLY_ARGV)}\b", source)


@pytest.mark.parametrize("metric", METRICS, ids=lambda metric: metric.name)
def test_every_metric_has_a_label_and_a_known_source(metric):
    assert metric.label
    if metric.kind is not Kind.COUNTER:
        assert metric.source in ClickEvent.__struct_fields__


def test_every_sorted_set_has_a_counter_for_the_events_its_cap_refused():
    sorted_sets = {m.name for m in METRICS if m.kind is Kind.SORTED_SET}
    overflow = {m.overflow_of: m for m in METRICS if m.overflow_of}
    assert set(overflow) == sorted_sets
    assert all(m.kind is Kind.COUNTER and m.source == REFUSED_BY_CAP for m in overflow.values())
    assert {m.record_field for m in overflow.values()} == {"pages_overflow", "referrers_overflow"}
