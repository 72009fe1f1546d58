"""Poison records: the hostile inputs a replica must reject without crashing.

Each kind is built from an honest event and names the dead-letter reason the
processor must give it (services.processor.decode, services.common.schema), so
the ground truth expects it in the DLQ exactly like the planted malformed
records. One kind is honest on purpose: an event whose page URL carries control
characters is valid and must be counted (only views escape such text).

Event times of the poison are relative to the dataset's arrival times where
that matters: `clock_ahead` (a phone two hours fast) is moved with the honest
events when a replay shifts them to now (SHIFTED_KINDS), so it stays two hours
ahead of its Kafka record timestamp whenever it is replayed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Final

import msgspec

from services.common.schema import (
    INVALID_VALUE,
    MAX_EVENT_BYTES,
    TOO_LARGE,
    UNDECODABLE,
    ClickEvent,
    encode_event,
)
from services.processor.decode import FUTURE_TIMESTAMP

DEEP_NESTING: Final = "poison_deep_nesting"
YEAR_9999: Final = "poison_year_9999"
HUGE_INTEGER: Final = "poison_huge_integer"
HUGE_FLOAT: Final = "poison_huge_float"
FAR_FUTURE: Final = "poison_far_future"
CLOCK_AHEAD: Final = "poison_clock_ahead"
JUST_TOO_LARGE: Final = "poison_just_too_large"
NEAR_BROKER_LIMIT: Final = "poison_near_broker_limit"
CONTROL_CHARACTERS: Final = "poison_control_characters"
# Not a DLQ kind: the honest event with control characters in its page URL is planted
# as a valid event (load.dataset.VALID) and counted in its window.
HONEST_CONTROL_CHARACTERS: Final = "honest_control_characters"

# Kind -> the dead-letter reason the processor gives it.
POISON_REASONS: Final = {
    DEEP_NESTING: UNDECODABLE,  # RecursionError in the decoder, ~1,000 levels deep
    YEAR_9999: INVALID_VALUE,  # outside [2000, 2100): no window can be formatted
    HUGE_INTEGER: INVALID_VALUE,  # a 400-digit duration_ms
    HUGE_FLOAT: INVALID_VALUE,  # 1e999 parses to infinity, not an int
    FAR_FUTURE: FUTURE_TIMESTAMP,  # dated 2099: would move a watermark 70 years on
    CLOCK_AHEAD: FUTURE_TIMESTAMP,  # two hours ahead of its record timestamp
    JUST_TOO_LARGE: TOO_LARGE,  # one byte over MAX_EVENT_BYTES
    NEAR_BROKER_LIMIT: TOO_LARGE,  # near the broker's 1 MB: the DLQ copy is truncated
    CONTROL_CHARACTERS: INVALID_VALUE,  # NUL and an ANSI escape in the country code
}
PLANTED_KINDS: Final = (*POISON_REASONS, HONEST_CONTROL_CHARACTERS)
SHIFTED_KINDS: Final = (CLOCK_AHEAD,)

NESTING_DEPTH = 1500
CLOCK_AHEAD_S = 2 * 3600
# Under the broker's default 1 MiB record limit with key, headers and batch overhead.
NEAR_BROKER_LIMIT_BYTES = 900_000
CONTROL = "\x00\x07\x1b[31m\r\n\x7f"


def poison_value(kind: str, event: ClickEvent, arrival: float) -> bytes:
    """The record value of poison `kind`, built from an honest `event` arriving at `arrival`."""
    fields = msgspec.to_builtins(event)
    honest = encode_event(event)
    if kind == DEEP_NESTING:
        nested = b'{"a": ' * NESTING_DEPTH + b"1" + b"}" * NESTING_DEPTH
        return honest[:-1] + b', "extra": ' + nested + b"}"
    if kind == YEAR_9999:
        fields["timestamp"] = "9999-12-31T23:59:59Z"
    elif kind == HUGE_INTEGER:
        return honest[:-1] + b', "duration_ms": 1' + b"0" * 400 + b"}"
    elif kind == HUGE_FLOAT:
        return honest[:-1] + b', "duration_ms": 1e999}'
    elif kind == FAR_FUTURE:
        fields["timestamp"] = "2099-06-01T00:00:00Z"
    elif kind == CLOCK_AHEAD:
        fields["timestamp"] = datetime.fromtimestamp(arrival + CLOCK_AHEAD_S, UTC).isoformat()
    elif kind == JUST_TOO_LARGE:
        return _padded(fields, MAX_EVENT_BYTES + 1)
    elif kind == NEAR_BROKER_LIMIT:
        return _padded(fields, NEAR_BROKER_LIMIT_BYTES)
    elif kind == CONTROL_CHARACTERS:
        fields["country"] = "U" + CONTROL
        fields["page_url"] = fields["page_url"] + CONTROL
    else:
        raise ValueError(f"unknown poison kind {kind!r}")
    return msgspec.json.encode(fields)


def honest_with_control_characters(event: ClickEvent, rng: random.Random) -> ClickEvent:
    """A valid event whose page URL ends in control characters: counted, never rejected."""
    suffix = "".join(rng.choice(CONTROL) for _ in range(3))
    return msgspec.structs.replace(event, page_url=f"{event.page_url}/{suffix}")


def _padded(fields: dict, size: int) -> bytes:
    """The event's JSON with an ignored `padding` field, exactly `size` bytes long."""
    base = len(msgspec.json.encode({**fields, "padding": ""}))
    return msgspec.json.encode({**fields, "padding": "x" * (size - base)})
