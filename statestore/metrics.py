"""The per-window metrics, declared once.

Each row names one metric of a window: how it is stored in Redis (its kind and
key suffix), what it reads from an event, the record field it is published as
and the label the dashboard shows. Fold's aggregation, the delta encoding, the
apply script's key layout, `read_window`, the record builder, the dashboard's
views and the load tools' ground truth and verdict all follow from this table,
so adding a metric is one row here (plus its test and its WindowRecord field).

Kinds, and where they live in Redis (key `...:w:<window_start>:<suffix>`):
- COUNTER: a field of the window's counters hash (suffix `n`), summed by HINCRBY;
- BREAKDOWN: fields `<prefix>:<name>` of the same hash, one per distinct value;
- HLL: a HyperLogLog of distinct values (PFADD), merged across partitions;
- SORTED_SET: a zset of value -> count (ZMSCORE, then ZADD of the sums), merged
  across partitions; each partition admits at most a capped number of distinct
  values per window (first come, in offset order), and the events of refused
  values are counted by the COUNTER whose `overflow_of` names it.

Row order is display order (the dashboard's overview and sections).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

COUNTERS_KEY = "n"  # suffix of the window's counters hash

# Sources of a COUNTER that are not event attributes.
EACH_EVENT = "<each event>"  # one per event
LATE_EVENT = "<late event>"  # one per event fold found late (see services.processor.fold)
REFUSED_BY_CAP = "<refused by the cap>"  # one per event whose value a capped zset refused
EVENT_TYPE = "event_type"  # the event attribute `only_event_type` compares


class Kind(enum.Enum):
    COUNTER = "counter"
    BREAKDOWN = "breakdown"
    HLL = "hll"
    SORTED_SET = "sorted_set"


class Display(enum.Enum):
    NONE = "none"
    OVERVIEW = "overview"  # one line of the window's overview
    LATE_OVERVIEW = "late_overview"  # overview, only once the window closed and has some
    BREAKDOWN = "breakdown"  # a section of every value and its share
    TOP = "top"  # a section of the top values and their share


@dataclass(frozen=True)
class Metric:
    name: str  # attribute of WindowDelta
    kind: Kind
    field: str  # COUNTER: hash field; BREAKDOWN: field prefix; HLL, SORTED_SET: key suffix
    source: str  # the event attribute it reads (COUNTER: summed, or EACH_EVENT / LATE_EVENT)
    record_field: str  # field of services.common.window_record.WindowRecord
    label: str
    display: Display = Display.NONE
    only_event_type: str | None = None  # count only events of this type
    per_event: bool = False  # published as the average per event (one decimal)
    unit: str = ""
    overflow_of: str | None = None  # REFUSED_BY_CAP: the SORTED_SET metric that refused
    # Counted up to the URL's first `?` or `#` (services.processor.fold), when switched on.
    url_path_only: bool = False

    @property
    def totals_attribute(self) -> str:
        """Attribute of WindowTotals: a unique count is named as its record field."""
        return self.record_field if self.kind is Kind.HLL else self.name


# fmt: off
METRICS: tuple[Metric, ...] = (
    Metric("events", Kind.COUNTER, "events", EACH_EVENT, "total_events", "Total Events",
           Display.OVERVIEW),
    Metric("users", Kind.HLL, "u", "user_id", "unique_users", "Unique Users", Display.OVERVIEW),
    Metric("sessions", Kind.HLL, "s", "session_id", "unique_sessions", "Unique Sessions",
           Display.OVERVIEW),
    Metric("duration_ms", Kind.COUNTER, "duration_ms", "duration_ms", "avg_duration_ms",
           "Avg Duration", Display.OVERVIEW, per_event=True, unit="ms"),
    Metric("late", Kind.COUNTER, "late", LATE_EVENT, "late_events", "Late Events",
           Display.LATE_OVERVIEW),
    Metric("event_types", Kind.BREAKDOWN, "et", "event_type", "event_types", "Event Types",
           Display.BREAKDOWN),
    Metric("devices", Kind.BREAKDOWN, "dev", "device_type", "devices", "Devices",
           Display.BREAKDOWN),
    Metric("countries", Kind.BREAKDOWN, "cc", "country", "countries", "Countries"),
    Metric("categories", Kind.BREAKDOWN, "cat", "page_category", "categories", "Categories"),
    Metric("referrers", Kind.SORTED_SET, "rf", "referrer", "top_referrers", "Top Referrers",
           Display.TOP),
    Metric("pages", Kind.SORTED_SET, "pg", "page_url", "top_pages", "Top Pages", Display.TOP,
           url_path_only=True),
    Metric("cart_sessions", Kind.HLL, "sc", "session_id", "cart_sessions", "Cart Sessions",
           only_event_type="add_to_cart"),
    Metric("purchase_sessions", Kind.HLL, "sp", "session_id", "purchase_sessions",
           "Purchase Sessions", only_event_type="purchase"),
    Metric("pages_overflow", Kind.COUNTER, "pg_overflow", REFUSED_BY_CAP, "pages_overflow",
           "Pages Over Cap", overflow_of="pages"),
    Metric("referrers_overflow", Kind.COUNTER, "rf_overflow", REFUSED_BY_CAP,
           "referrers_overflow", "Referrers Over Cap", overflow_of="referrers"),
)
# fmt: on


def of_kind(kind: Kind) -> tuple[Metric, ...]:
    return tuple(metric for metric in METRICS if metric.kind is kind)


def shown(*displays: Display) -> tuple[Metric, ...]:
    return tuple(metric for metric in METRICS if metric.display in displays)


COUNTERS = of_kind(Kind.COUNTER)
BREAKDOWNS = of_kind(Kind.BREAKDOWN)
HLLS = of_kind(Kind.HLL)
SORTED_SETS = of_kind(Kind.SORTED_SET)
# The window's keys, in the order apply_batch.lua receives them: the counters hash,
# then one key per HLL, then one per sorted set (their counts are passed as ARGV).
WINDOW_KEY_SUFFIXES = (COUNTERS_KEY, *(m.field for m in HLLS), *(m.field for m in SORTED_SETS))
BY_BREAKDOWN_PREFIX = {metric.field: metric for metric in BREAKDOWNS}
BY_COUNTER_FIELD = {metric.field: metric for metric in COUNTERS}
# The counters hash field that counts, per sorted set, the events its cap refused.
OVERFLOW_FIELD = {metric.overflow_of: metric.field for metric in COUNTERS if metric.overflow_of}
