"""Step 2, fold: a partition's decoded events into per-window deltas.

Event time decides everything here. The partition watermark (the largest event
time applied so far in the partition) moves through the batch in offset order,
so whether an event is late or too late depends only on the partition's own
history, never on timing or on how many replicas run: replaying the same
records always folds the same way.

- on time: its window has not closed for this partition (window end + grace is
  still ahead of the watermark);
- late: the window had closed; the event still counts, and amends the window;
- too late: the window had closed and the event is more than the allowed
  lateness behind the watermark, or its window is already finalized (sealed):
  it goes to the dead-letter topic instead.

Page URLs are counted up to their first `?` or `#` (query string and fragment
dropped) unless `normalize_page_urls` is off, so a URL with a tracking id per
visitor is one page, not one zset member per visitor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter

from services.common.schema import ClickEvent
from services.common.windowing import Windowing
from services.processor import columns
from statestore import METRICS, Kind, WindowDelta
from statestore.metrics import EACH_EVENT, LATE_EVENT, REFUSED_BY_CAP

_timestamp = attrgetter("timestamp")
_epoch = datetime.timestamp


@dataclass
class Folded:
    deltas: list[WindowDelta]
    too_late: list[int]  # indexes into the batch's events
    watermark_s: float | None  # the partition watermark after the batch
    late: int


def fold(
    events: list[ClickEvent],
    watermark_s: float | None,
    sealed_before: int,
    windowing: Windowing,
    normalize_page_urls: bool = True,
    time_bounds: tuple[datetime, datetime] | None = None,
) -> Folded:
    """`time_bounds`, when given, are the earliest and latest event time in `events`
    (decode found them already)."""
    lateness = windowing.allowed_lateness_s
    current = float("-inf") if watermark_s is None else watermark_s
    if not events:
        return Folded([], [], watermark_s, 0)
    if time_bounds is None:
        time_bounds = columns.time_bounds(events)
    earliest, latest = time_bounds[0].timestamp(), time_bounds[1].timestamp()
    window_start = windowing.start_of(earliest)
    if (
        latest < windowing.end_of(window_start)
        and window_start >= sealed_before
        and windowing.closes_at(window_start) > max(current, latest)
    ):
        # The usual batch: one window that stays open through the whole batch, so
        # no event in it can be late, and the order of events does not matter.
        delta = _aggregate(window_start, events, 0, normalize_page_urls)
        return Folded([delta], [], max(current, latest), 0)
    times = list(map(_epoch, map(_timestamp, events)))
    by_window: dict[int, list[ClickEvent]] = {}
    late_by_window: Counter = Counter()
    too_late: list[int] = []
    for index, event in enumerate(events):
        event_time = times[index]
        window_start = windowing.start_of(event_time)
        closed = windowing.closes_at(window_start) <= current
        if window_start < sealed_before or (closed and event_time < current - lateness):
            too_late.append(index)
            continue
        if closed:
            late_by_window[window_start] += 1
        bucket = by_window.get(window_start)
        if bucket is None:
            bucket = by_window[window_start] = []
        bucket.append(event)
        if event_time > current:
            current = event_time
    deltas = [
        _aggregate(window_start, bucket, late_by_window[window_start], normalize_page_urls)
        for window_start, bucket in sorted(by_window.items())
    ]
    return Folded(
        deltas,
        too_late,
        None if current == float("-inf") else current,
        sum(late_by_window.values()),
    )


def _aggregate(
    window_start: int, events: list[ClickEvent], late: int, normalize_page_urls: bool
) -> WindowDelta:
    """One window's delta, one attribute per metric of statestore.metrics."""
    delta = WindowDelta(window_start)
    for metric in METRICS:
        if metric.source == REFUSED_BY_CAP:
            continue  # the state store counts these, as it applies the batch
        if metric.source == EACH_EVENT:
            value: object = len(events)
        elif metric.source == LATE_EVENT:
            value = late
        elif metric.kind is Kind.COUNTER:
            value = columns.total(events, metric.source)
        elif metric.kind is Kind.HLL:
            value = columns.distinct(events, metric.source, metric.only_event_type)
        else:
            value = columns.counts(events, metric.source, metric.only_event_type)
            if metric.url_path_only and normalize_page_urls:
                value = url_paths(value)
        setattr(delta, metric.name, value)
    return delta


def url_paths(counts: Counter) -> Counter:
    """URL counts merged by the URL up to its first `?` or `#` (`/p?id=1#x` -> `/p`).

    Runs over the batch's distinct URLs, not its events, and keeps first-occurrence
    order: the zset cap admits members in that order.
    """
    if not any("?" in url or "#" in url for url in counts):
        return counts
    paths: Counter = Counter()
    for url, count in counts.items():
        paths[url.partition("?")[0].partition("#")[0]] += count
    return paths
