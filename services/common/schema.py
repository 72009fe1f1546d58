"""The clickstream event: one typed definition shared by producer and processor.

Bounds protect the pipeline, not the business: caps on string lengths keep one
bad record from blowing up Redis keys or memory, `duration_ms` is bounded so
one absurd value cannot swing a window's average, and event time must lie in
[EARLIEST_EVENT_TIME, LATEST_EVENT_TIME) so every later step (window
arithmetic, ISO formatting of a window's end) works on it. Decoding never
raises anything but InvalidEvent: a record is data from strangers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product
from string import ascii_uppercase
from typing import Annotated, Final, Literal

import msgspec

EVENT_TYPES: Final = ("page_view", "click", "add_to_cart", "purchase", "search")
DEVICE_TYPES: Final = ("mobile", "desktop", "tablet")

EventType = Literal["page_view", "click", "add_to_cart", "purchase", "search"]
DeviceType = Literal["mobile", "desktop", "tablet"]

MAX_EVENT_BYTES: Final = 16 * 1024
MAX_DURATION_MS: Final = 24 * 3600 * 1000
# No clickstream this pipeline sees predates 2000 or postdates 2100, and both ends stay
# thousands of years clear of datetime's year 1..9999, so a window's start and end, in
# any offset, always convert and format (year 9999 made the emitter's ISO window_end fail).
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME: Final = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# Exactly two ASCII capital letters, as a Literal: msgspec checks it with a hash lookup
# in C, where the regex it replaces cost a third of decoding (and let "US\n" through).
COUNTRY_CODES: Final = tuple(map("".join, product(ascii_uppercase, repeat=2)))
CountryCode = Literal[COUNTRY_CODES]
UtcTimestamp = Annotated[datetime, msgspec.Meta(tz=True)]
DurationMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_DURATION_MS)]


class ClickEvent(msgspec.Struct, frozen=True, gc=False):
    """One user interaction, as the original example's producer writes it."""

    event_id: Id
    timestamp: UtcTimestamp
    user_id: Id
    session_id: Id
    event_type: EventType
    page_url: Url
    page_category: Label
    referrer: Label
    device_type: DeviceType
    country: CountryCode
    duration_ms: DurationMs


class InvalidEvent(ValueError):
    """A record that is not a valid event; `reason` is a stable, countable label."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Rejection reasons, used as DLQ header values and metric labels.
EMPTY: Final = "empty"
TOO_LARGE: Final = "too_large"
NOT_JSON: Final = "not_json"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
INVALID_VALUE: Final = "invalid_value"
# The decoder raised something other than a decode or validation error (RecursionError
# on JSON nested ~1,000 deep, for one): the record is refused, the replica lives on.
UNDECODABLE: Final = "undecodable"
REJECTION_REASONS: Final = (
    EMPTY,
    TOO_LARGE,
    NOT_JSON,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_VALUE,
    UNDECODABLE,
)

# Hot loops call EVENT_DECODER.decode directly and fall back to decode_event for the reason.
EVENT_DECODER = msgspec.json.Decoder(ClickEvent)
_encoder = msgspec.json.Encoder()


def decode_event(raw: bytes | None) -> ClickEvent:
    """Decode and validate one record value, or raise InvalidEvent."""
    if not raw:
        raise InvalidEvent(EMPTY, "record has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(TOO_LARGE, f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        event = EVENT_DECODER.decode(raw)
    except msgspec.ValidationError as error:
        raise InvalidEvent(validation_reason(str(error)), str(error)) from None
    except msgspec.DecodeError as error:
        raise InvalidEvent(NOT_JSON, str(error)) from None
    except Exception as error:  # whatever else the input provokes, it must not escape
        raise InvalidEvent(UNDECODABLE, f"{type(error).__name__}: {error}"[:500]) from None
    check_event_time(event)
    return event


def check_event_time(event: ClickEvent) -> None:
    """Raise InvalidEvent (invalid_value) if the event time is outside the sane range."""
    if not EARLIEST_EVENT_TIME <= event.timestamp < LATEST_EVENT_TIME:
        raise InvalidEvent(
            INVALID_VALUE,
            f"{event.timestamp.isoformat()} outside {_EVENT_TIME_RANGE} - at `$.timestamp`",
        )


_EVENT_TIME_RANGE: Final = f"[{EARLIEST_EVENT_TIME:%Y-%m-%d}, {LATEST_EVENT_TIME:%Y-%m-%d})"


def encode_event(event: ClickEvent) -> bytes:
    return _encoder.encode(event)


def validation_reason(message: str) -> str:
    """A stable reject reason from msgspec's validation message."""
    if message.startswith("Object missing required field"):
        return MISSING_FIELD
    # msgspec says "Expected `int`, got `str`" for a type error, and
    # "Expected `int` >= 0" (no "got") for a constraint on the right type.
    if message.startswith("Expected `") and "`, got `" in message:
        return WRONG_TYPE
    return INVALID_VALUE
