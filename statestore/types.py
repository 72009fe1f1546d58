"""Value types the state store takes and returns; no Redis here.

WindowDelta and WindowTotals have one attribute per row of statestore.metrics,
generated from the table so a new metric needs no edit here:
- WindowDelta (what one partition batch adds to one window): a COUNTER is an
  int, a BREAKDOWN a Counter, an HLL a collection of members, a SORTED_SET a
  mapping of member -> count;
- WindowTotals (a window merged across partitions): the same, except that an
  HLL is its unique count, named as its record field (`unique_users`).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from statestore.metrics import METRICS, Kind, Metric

NO_FENCE = -1  # the fence of a partition no batch was applied to
NOT_SEALED = -1  # sealed_before of a partition with no sealed window


def _delta_field(metric: Metric) -> tuple[str, Any, Any]:
    if metric.kind is Kind.COUNTER:
        return metric.name, int, field(default=0)
    if metric.kind is Kind.BREAKDOWN:
        return metric.name, Counter, field(default_factory=Counter)
    if metric.kind is Kind.HLL:
        return metric.name, Collection[str], field(default=())
    return metric.name, Mapping[str, int], field(default_factory=dict)


def _totals_field(metric: Metric) -> tuple[str, Any, Any]:
    if metric.kind is Kind.HLL:
        return metric.totals_attribute, int, field(default=0)
    if metric.kind is Kind.SORTED_SET:
        return metric.name, Counter, field(default_factory=Counter)
    return _delta_field(metric)


WindowDelta = make_dataclass(
    "WindowDelta",
    [("window_start", int), *map(_delta_field, METRICS)],
    namespace={"__doc__": "What one partition batch adds to one window.", "__module__": __name__},
)
WindowTotals = make_dataclass(
    "WindowTotals",
    [("window_start", int), *map(_totals_field, METRICS)],
    namespace={"__doc__": "A window's state merged across partitions.", "__module__": __name__},
)


class ApplyStatus(enum.Enum):
    APPLIED = 1
    STALE = 0  # fence moved: a replayed, retried or zombie batch; nothing written
    SEALED = -1  # a window of the batch was finalized; nothing written


@dataclass(frozen=True)
class ApplyResult:
    status: ApplyStatus
    fence: int
    sealed_before: int


@dataclass(frozen=True)
class PartitionState:
    partition: int
    fence: int = NO_FENCE
    watermark_s: float | None = None
    applied_at_ms: int | None = None
    caught_up_offset: int | None = None  # the log end its owner last read up to
    sealed_before: int = NOT_SEALED
    owner: str = ""
    dead_letters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Emission:
    """What has been published of a window, and any claim not yet committed."""

    revision: int = 0
    version: int = 0
    final: bool = False
    pending_record: bytes | None = None
    pending_revision: int = 0
    pending_final: bool = False


@dataclass(frozen=True)
class Claim:
    claimed: bool
    # When another claim is pending, that one must be published first.
    pending: Emission | None = None
