"""The clickstream event: one typed definition shared by producer and processor.

Bounds protect the pipeline, not the business: caps on string lengths keep one
bad record from blowing up Redis keys or memory, and `duration_ms` is bounded
so one absurd value cannot swing a window's average.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

EVENT_TYPES: Final = ("page_view", "click", "add_to_cart", "purchase", "search")
DEVICE_TYPES: Final = ("mobile", "desktop", "tablet")

EventType = Literal["page_view", "click", "add_to_cart", "purchase", "search"]
DeviceType = Literal["mobile", "desktop", "tablet"]

MAX_EVENT_BYTES: Final = 16 * 1024
MAX_DURATION_MS: Final = 24 * 3600 * 1000

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
CountryCode = Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")]
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
REJECTION_REASONS: Final = (EMPTY, TOO_LARGE, NOT_JSON, MISSING_FIELD, WRONG_TYPE, INVALID_VALUE)

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
        return EVENT_DECODER.decode(raw)
    except msgspec.ValidationError as error:
        raise InvalidEvent(_validation_reason(str(error)), str(error)) from None
    except msgspec.DecodeError as error:
        raise InvalidEvent(NOT_JSON, str(error)) from None


def encode_event(event: ClickEvent) -> bytes:
    return _encoder.encode(event)


def _validation_reason(message: str) -> str:
    if message.startswith("Object missing required field"):
        return MISSING_FIELD
    # msgspec says "Expected `int`, got `str`" for a type error, and
    # "Expected `int` >= 0" (no "got") for a constraint on the right type.
    if message.startswith("Expected `") and "`, got `" in message:
        return WRONG_TYPE
    return INVALID_VALUE
