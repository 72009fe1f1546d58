"""services/processor/_columns.c against the Python reader it replaces.

Fold's aggregates and decode's time bounds come from whichever reader was built;
both must give the same values, in the same order, for any events.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.schema import DEVICE_TYPES, EVENT_TYPES, ClickEvent
from services.common.windowing import Windowing
from services.processor import columns
from services.processor.fold import fold
from tests.unit.protocol_fakes import click

pytestmark = pytest.mark.skipif(columns.IN_C is None, reason="processor._columns is not built")

C, PYTHON = columns.IN_C, columns.IN_PYTHON
STRING_ATTRIBUTES = (
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "page_url",
    "page_category",
    "referrer",
    "device_type",
    "country",
)


def fresh(text: str) -> str:
    """An equal string that is a new object, as decoding each record gives."""
    return "".join(list(text))


# Few distinct values, so values repeat; some are equal but not the same object.
labels = st.sampled_from(["a", "b", "/p?x=1", "/p#y", "ü", ""]).map(fresh) | st.text(max_size=4)
moments = st.integers(0, 4000).map(lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(0, s))
# The same instant in another offset compares equal: min() and max() keep the first.
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
timestamps = st.builds(lambda moment, zone: moment.astimezone(zone), moments, offsets)
events = st.builds(
    ClickEvent,
    event_id=labels,
    timestamp=timestamps,
    user_id=labels,
    session_id=labels,
    event_type=st.sampled_from(EVENT_TYPES).map(fresh) | labels,
    page_url=labels,
    page_category=labels,
    referrer=labels,
    device_type=st.sampled_from(DEVICE_TYPES),
    country=st.sampled_from(["US", "DE", "FR"]),
    duration_ms=st.integers(-(2**70), 2**70) | st.integers(0, 1000),
)
only_types = st.none() | st.sampled_from([*EVENT_TYPES, "a"])


@given(st.lists(events, max_size=40), st.sampled_from(STRING_ATTRIBUTES), only_types)
def test_counts_agree_in_value_and_order(batch, attribute, only_event_type):
    in_c = C.counts(batch, attribute, only_event_type)
    assert list(in_c.items()) == list(PYTHON.counts(batch, attribute, only_event_type).items())
    assert type(in_c) is type(PYTHON.counts(batch, attribute, only_event_type))


@given(st.lists(events, max_size=40), st.sampled_from(STRING_ATTRIBUTES), only_types)
def test_distinct_agrees(batch, attribute, only_event_type):
    assert C.distinct(batch, attribute, only_event_type) == PYTHON.distinct(
        batch, attribute, only_event_type
    )


@given(st.lists(events, max_size=40))
def test_total_agrees_past_64_bits(batch):
    assert C.total(batch, "duration_ms") == PYTHON.total(batch, "duration_ms")


@given(st.lists(events, min_size=1, max_size=40))
def test_time_bounds_are_the_same_objects(batch):
    earliest, latest = C.time_bounds(batch)
    expected_earliest, expected_latest = PYTHON.time_bounds(batch)
    assert earliest is expected_earliest
    assert latest is expected_latest


@given(st.lists(events, max_size=40), st.none() | st.floats(1.767e9, 1.768e9), st.booleans())
def test_fold_is_the_same_with_either_reader(batch, watermark_s, normalize_page_urls):
    windowing = Windowing(size_s=300, grace_s=10, allowed_lateness_s=600)
    folded = {}
    for reader in (C, PYTHON):
        with _reading_with(reader):
            folded[reader.name] = fold(batch, watermark_s, 0, windowing, normalize_page_urls)
    assert folded["c"] == folded["python"]
    assert [list(d.pages.items()) for d in folded["c"].deltas] == [
        list(d.pages.items()) for d in folded["python"].deltas
    ]


@contextmanager
def _reading_with(reader: columns.Reader):
    chosen = columns.counts, columns.distinct, columns.total, columns.time_bounds
    columns.counts, columns.distinct = reader.counts, reader.distinct
    columns.total, columns.time_bounds = reader.total, reader.time_bounds
    try:
        yield
    finally:
        columns.counts, columns.distinct, columns.total, columns.time_bounds = chosen


def test_total_adds_what_is_not_an_int_as_sum_does():
    batch = [_event(duration_ms=value) for value in (2**63 - 1, 1, 0.5, -3)]
    assert C.total(batch, "duration_ms") == sum(e.duration_ms for e in batch) == 2**63 - 1.5


def test_a_filtered_count_sees_only_that_event_type():
    batch = [_event(event_type=kind, session_id=s) for kind, s in [("click", "a"), ("buy", "b")]]
    assert C.distinct(batch, "session_id", "buy") == {"b"}
    assert dict(C.counts(batch, "session_id", "click")) == {"a": 1}


def test_an_eq_that_empties_the_list_midway_stops_both_readers_alike():
    """Values are untrusted objects: comparing one may run Python code that changes
    the list; the C reader holds its own references and stops where map() stops."""
    batch: list[ClickEvent] = []

    class Clearing(str):
        def __eq__(self, other):
            batch.clear()
            return False

        __hash__ = str.__hash__

    for reader in (C, PYTHON):
        batch[:] = [_event(page_url=Clearing(f"/p{n % 3}")) for n in range(50)]
        assert list(reader.counts(batch, "page_url", None).values()) == [1, 1, 1, 1]
        batch[:] = [_event(event_type=Clearing("click")) for _ in range(50)]
        assert reader.distinct(batch, "user_id", "click") == set()
        assert batch == []


def test_no_events_have_no_time_bounds():
    with pytest.raises(ValueError):
        C.time_bounds([])


def test_anything_but_a_list_of_events_is_refused():
    with pytest.raises(TypeError, match="ClickEvent"):
        C.counts([_event(), "not an event"], "user_id", None)
    with pytest.raises(TypeError, match="list"):
        C.distinct(iter([_event()]), "user_id", None)
    with pytest.raises(TypeError, match="member descriptor"):
        columns._columns.total([_event()], "duration_ms")
    with pytest.raises(ValueError, match="empty"):
        columns._columns.count_into({"u": 1}, [_event()], ClickEvent.user_id, None, None)


def _event(**fields) -> ClickEvent:
    return msgspec.structs.replace(click(1_767_225_600), **fields)
