"""Generate a dataset: realistic traffic over N windows, with disorder and bad records planted.

The producer's TrafficGenerator makes the events, under a seed, one per arrival
slot spread evenly over `windows * window_seconds` of event time. A planting
Random (derived from the same seed) then decides, per slot, what arrives:

- valid: the event, its event time equal to its arrival time;
- out_of_order: event time up to grace/2 before arrival, so it is overtaken by
  later events but never late (window_end + grace stays ahead of any watermark);
- late: event time between grace + 1 s and a bound well inside the allowed
  lateness behind the stream; it counts, possibly as a late amendment;
- too_late: event time far outside the allowed lateness (at least two days
  behind), only after the first tenth of the stream so every partition already
  has a watermark; it goes to the DLQ as too_late and does not count;
- malformed: one of the rejection reasons (not JSON, missing field, wrong type,
  unknown enum value, oversized, empty value);
- poison (`poison` share, 0 unless asked for): one of load.poison's hostile kinds,
  expected in the DLQ under the reason the processor gives it, or the honest event
  with control characters in its page URL, which counts.

Because "late" stays far inside the allowed lateness and "too late" far outside
it, the ground truth is exact whatever the partitioning and batching.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from load import dataset, poison, truth
from load.dataset import LATE, OUT_OF_ORDER, TOO_LATE, VALID, Record
from services.common.schema import (
    EMPTY,
    INVALID_VALUE,
    MAX_EVENT_BYTES,
    MISSING_FIELD,
    NOT_JSON,
    TOO_LARGE,
    WRONG_TYPE,
    ClickEvent,
    encode_event,
)
from services.common.windowing import Windowing
from services.producer.generator import TrafficGenerator

MALFORMED_KINDS = (NOT_JSON, MISSING_FIELD, WRONG_TYPE, INVALID_VALUE, TOO_LARGE, EMPTY)
TOO_LATE_MIN_S = 2 * 24 * 3600
# Too-late events spread over an hour beyond their minimum age, so they fall in many
# different (long sealed) windows rather than one.
TOO_LATE_SPREAD_S = 3600
WARM_UP_SHARE = 0.10  # no too-late events before every partition has a watermark

# A fixed default start keeps `generate` reproducible from its flags alone.
DEFAULT_START = datetime(2024, 10, 26, 10, 0, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Plan:
    events: int = 1_000_000  # records in the file, malformed ones included
    windows: int = 12
    window_seconds: int = 300
    grace_seconds: float = 10.0
    allowed_lateness_seconds: float = 3600.0
    users: int = 10_000
    seed: int = 42
    start: float = DEFAULT_START  # floored to a window boundary
    out_of_order: float = 0.05
    late: float = 0.01
    too_late: float = 0.001
    malformed: float = 0.002
    poison: float = 0.0

    def __post_init__(self) -> None:
        shares = (self.out_of_order, self.late, self.too_late, self.malformed, self.poison)
        if any(share < 0 for share in shares) or sum(shares) >= 1:
            raise ValueError("planted shares must be >= 0 and sum to less than 1")
        if self.events <= 0 or self.windows <= 0 or self.window_seconds <= 0:
            raise ValueError("events, windows and window_seconds must be positive")
        if self.allowed_lateness_seconds <= self.grace_seconds + 2:
            raise ValueError("allowed lateness must exceed grace by more than 2 s")

    @property
    def first_window(self) -> float:
        return Windowing(self.window_seconds).start_of(self.start)

    @property
    def span(self) -> float:
        return self.windows * self.window_seconds

    @property
    def late_range(self) -> tuple[float, float]:
        """How far behind the stream a late event's time lies: beyond grace, within lateness/2."""
        low = self.grace_seconds + 1.0
        high = min(
            self.grace_seconds + 1.5 * self.window_seconds, self.allowed_lateness_seconds / 2
        )
        return low, max(low, high)

    @property
    def too_late_behind(self) -> float:
        return max(TOO_LATE_MIN_S, 4 * self.allowed_lateness_seconds)


def generate(plan: Plan) -> Iterator[Record]:
    """The dataset's records in arrival order; deterministic for a plan."""
    traffic = TrafficGenerator(users=plan.users, seed=plan.seed)
    planting = random.Random(f"plant-{plan.seed}")
    start, span, count = plan.first_window, plan.span, plan.events
    late_low, late_high = plan.late_range
    ooo_max = plan.grace_seconds / 2
    # Cumulative thresholds for one draw per slot.
    t_ooo = plan.out_of_order
    t_late = t_ooo + plan.late
    t_too_late = t_late + plan.too_late
    t_malformed = t_too_late + plan.malformed
    t_poison = t_malformed + plan.poison
    warm_up_end = start + WARM_UP_SHARE * span
    for slot in range(count):
        arrival = start + span * (slot + planting.random()) / count
        event = traffic.next_event(arrival)
        draw = planting.random()
        if draw < t_ooo:
            event_time = max(start, arrival - planting.uniform(0.001, ooo_max))
            yield _event_record(event, event_time, arrival, OUT_OF_ORDER)
        elif draw < t_late:
            if arrival - late_high >= start:  # early in the stream nothing can be late yet
                event_time = arrival - planting.uniform(late_low, late_high)
                yield _event_record(event, event_time, arrival, LATE)
            else:
                yield _event_record(event, arrival, arrival, VALID)
        elif draw < t_too_late:
            if arrival >= warm_up_end:
                event_time = arrival - plan.too_late_behind - planting.uniform(0, TOO_LATE_SPREAD_S)
                yield _event_record(event, event_time, arrival, TOO_LATE)
            else:
                yield _event_record(event, arrival, arrival, VALID)
        elif draw < t_malformed:
            kind = MALFORMED_KINDS[planting.randrange(len(MALFORMED_KINDS))]
            value = malformed_value(kind, event, planting)
            yield Record(event.user_id.encode(), value, None, arrival, kind)
        elif draw < t_poison:
            yield _poison_record(event, arrival, planting)
        else:
            yield _event_record(event, arrival, arrival, VALID)


def _event_record(event: ClickEvent, event_time: float, arrival: float, kind: str) -> Record:
    if event_time != arrival:
        event = msgspec.structs.replace(event, timestamp=datetime.fromtimestamp(event_time, UTC))
    return Record(event.user_id.encode(), encode_event(event), event_time, arrival, kind)


def _poison_record(event: ClickEvent, arrival: float, planting: random.Random) -> Record:
    kind = poison.PLANTED_KINDS[planting.randrange(len(poison.PLANTED_KINDS))]
    if kind == poison.HONEST_CONTROL_CHARACTERS:
        honest = poison.honest_with_control_characters(event, planting)
        return _event_record(honest, arrival, arrival, VALID)
    value = poison.poison_value(kind, event, arrival)
    return Record(event.user_id.encode(), value, None, arrival, kind)


def malformed_value(kind: str, event: ClickEvent, rng: random.Random) -> bytes:
    """A record value the schema rejects with `kind` as its reason."""
    fields = msgspec.to_builtins(event)
    if kind == EMPTY:
        return b""
    if kind == NOT_JSON:
        choice = rng.randrange(3)
        if choice == 0:
            encoded = encode_event(event)
            return encoded[: len(encoded) // 2]  # truncated mid-record
        if choice == 1:
            return b"\xff\xfe\x00garbage \x9c not utf-8"
        return b"user_1,page_view,/home"  # CSV from a misconfigured client
    if kind == MISSING_FIELD:
        fields.pop(rng.choice(sorted(fields)))
    elif kind == WRONG_TYPE:
        if rng.random() < 0.5:
            fields["duration_ms"] = str(fields["duration_ms"])
        else:
            fields["user_id"] = 12345
    elif kind == INVALID_VALUE:
        field, bad = rng.choice(
            (("event_type", "teleport"), ("device_type", "fridge"), ("country", "usa"))
        )
        fields[field] = bad
    elif kind == TOO_LARGE:
        fields["padding"] = "x" * (MAX_EVENT_BYTES + 1024)
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return msgspec.json.encode(fields)


def write_dataset(plan: Plan, path: Path) -> dict[str, Any]:
    """Generate `plan` into `path` and its ground truth next to it; returns the truth."""
    builder = truth.TruthBuilder(plan.window_seconds)

    def tallied(records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            builder.add(record)
            yield record

    dataset.write(path, tallied(generate(plan)))
    expected = builder.result(
        seed=plan.seed,
        users=plan.users,
        grace_seconds=plan.grace_seconds,
        allowed_lateness_seconds=plan.allowed_lateness_seconds,
        dataset=path.name,
    )
    truth.write(dataset.truth_path(path), expected)
    return expected
