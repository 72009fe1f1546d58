from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.common import schema
from services.common.schema import InvalidEvent, decode_event, encode_event

VALID = {
    "event_id": "550e8400-e29b-41d4-a716-446655440000",
    "timestamp": "2024-10-26T10:30:45.123Z",
    "user_id": "user_42",
    "session_id": "sess_abc123def456",
    "event_type": "page_view",
    "page_url": "/products/laptop",
    "page_category": "electronics",
    "referrer": "google.com",
    "device_type": "mobile",
    "country": "US",
    "duration_ms": 2500,
}


def raw(**changes) -> bytes:
    event = {**VALID, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def reason_of(value: bytes | None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(value)
    return caught.value.reason


def test_original_example_event_decodes_with_utc_timestamp():
    event = decode_event(raw())
    assert event.user_id == "user_42"
    assert event.timestamp == datetime(2024, 10, 26, 10, 30, 45, 123000, tzinfo=UTC)


def test_encode_then_decode_round_trips():
    event = decode_event(raw())
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, schema.EMPTY),
        (b"", schema.EMPTY),
        (b"x" * (schema.MAX_EVENT_BYTES + 1), schema.TOO_LARGE),
        (b"not json", schema.NOT_JSON),
        (b'{"event_id": "a"', schema.NOT_JSON),
        (raw(user_id=...), schema.MISSING_FIELD),
        (raw(duration_ms="2500"), schema.WRONG_TYPE),
        (raw(event_type="scroll"), schema.INVALID_VALUE),
        (raw(device_type="watch"), schema.INVALID_VALUE),
        (raw(duration_ms=-1), schema.INVALID_VALUE),
        (raw(duration_ms=schema.MAX_DURATION_MS + 1), schema.INVALID_VALUE),
        (raw(timestamp="2024-10-26T10:30:45"), schema.INVALID_VALUE),
        (raw(timestamp="yesterday"), schema.INVALID_VALUE),
        (raw(user_id=""), schema.INVALID_VALUE),
        (raw(user_id="u" * 129), schema.INVALID_VALUE),
        (raw(country="usa"), schema.INVALID_VALUE),
        (raw(country="US\n"), schema.INVALID_VALUE),
        (raw(country="ÜS"), schema.INVALID_VALUE),
        (raw(timestamp="9999-12-31T23:59:59Z"), schema.INVALID_VALUE),
        (raw(timestamp="1999-12-31T23:59:59Z"), schema.INVALID_VALUE),
        (b"[1, 2, 3]", schema.WRONG_TYPE),
    ],
)
def test_every_rejection_has_its_reason(value, reason):
    assert reason_of(value) == reason


def test_rejection_detail_names_the_field():
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw(duration_ms="2500"))
    assert "duration_ms" in caught.value.detail


def test_non_utc_offset_is_accepted_as_the_same_instant():
    event = decode_event(raw(timestamp="2024-10-26T12:30:45.123+02:00"))
    assert event.timestamp.timestamp() == decode_event(raw()).timestamp.timestamp()
