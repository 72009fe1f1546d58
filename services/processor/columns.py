"""Column reads over a batch of events: fold's aggregates and decode's time bounds.

Each function reads one attribute of every event in a list. Two readers give the
same results: `IN_C` (services/processor/_columns.c) reads each event's slot
directly, in one C loop per column; `IN_PYTHON` uses map(), Counter, min() and
max(). The C one is used wherever the extension was built; setup.py marks it
optional, so an install without a compiler still works, with a slower fold.
tests/unit/test_columns.py checks that both agree on any events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter, eq

from services.common.schema import ClickEvent

try:
    from services.processor import _columns
except ImportError:  # built without a compiler: setup.py marks the extension optional
    _columns = None

EVENT_TYPE = "event_type"  # the attribute `only_event_type` compares


@dataclass(frozen=True)
class Reader:
    name: str
    # counts(events, attribute, only_event_type): value -> events, in first-occurrence order
    counts: Callable[[list[ClickEvent], str, str | None], Counter]
    # distinct(events, attribute, only_event_type): the set of values
    distinct: Callable[[list[ClickEvent], str, str | None], set]
    total: Callable[[list[ClickEvent], str], int]  # sum of an int attribute
    time_bounds: Callable[[list[ClickEvent]], tuple[datetime, datetime]]  # earliest, latest


def _read(events: list[ClickEvent], attribute: str, only_event_type: str | None):
    values = map(attrgetter(attribute), events)
    if only_event_type is None:
        return values
    kept = map(eq, map(attrgetter(EVENT_TYPE), events), repeat(only_event_type))
    return compress(values, kept)


def _python_time_bounds(events: list[ClickEvent]) -> tuple[datetime, datetime]:
    times = list(map(attrgetter("timestamp"), events))
    return min(times), max(times)


IN_PYTHON = Reader(
    "python",
    counts=lambda events, attribute, only: Counter(_read(events, attribute, only)),
    distinct=lambda events, attribute, only: set(_read(events, attribute, only)),
    total=lambda events, attribute: sum(map(attrgetter(attribute), events)),
    time_bounds=_python_time_bounds,
)


def _c_reader(columns) -> Reader:
    # The C functions take member descriptors (ClickEvent.user_id): a slot's offset.
    def slot(attribute: str):
        return getattr(ClickEvent, attribute)

    event_type = slot(EVENT_TYPE)

    def only(only_event_type: str | None) -> tuple:
        return (None, None) if only_event_type is None else (event_type, only_event_type)

    def counts(events: list[ClickEvent], attribute: str, only_event_type: str | None) -> Counter:
        counted: Counter = Counter()
        columns.count_into(counted, events, slot(attribute), *only(only_event_type))
        return counted

    return Reader(
        "c",
        counts=counts,
        distinct=lambda events, attribute, only_type: columns.distinct(
            events, slot(attribute), *only(only_type)
        ),
        total=lambda events, attribute: columns.total(events, slot(attribute)),
        time_bounds=lambda events: columns.bounds(events, ClickEvent.timestamp),
    )


IN_C = None if _columns is None else _c_reader(_columns)
READER = IN_C or IN_PYTHON

counts = READER.counts
distinct = READER.distinct
total = READER.total
time_bounds = READER.time_bounds
