"""The decode step against hostile records: no record raises, each lands exactly once.

Records are real confluent_kafka Message objects (the decoder reads them through
the C methods), built in memory; the property tests feed arbitrary bytes,
nesting, widths, numbers, unicode and sizes around MAX_EVENT_BYTES.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common import schema
from services.processor.decode import (
    FUTURE_TIMESTAMP,
    NO_RECORD_TIMESTAMP,
    decode,
)

TOPIC = "events"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
KNOWN_REASONS = {*schema.REJECTION_REASONS, FUTURE_TIMESTAMP, NO_RECORD_TIMESTAMP}

VALID = {
    "event_id": "550e8400-e29b-41d4-a716-446655440000",
    "timestamp": "2026-11-29T11:59:00Z",
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


def event_bytes(**changes) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def record(value, offset=0, partition=0, record_time=NOW, kind=TIMESTAMP_CREATE_TIME) -> Message:
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=b"user_42",
        value=value,
        timestamp=(kind, int(record_time * 1000)),
    )


def records(values, record_time=NOW) -> list[Message]:
    return [record(value, offset, record_time=record_time) for offset, value in enumerate(values)]


def assert_each_record_once(messages, decoded):
    """Every record in exactly one of events/rejects, in offset order, with a known reason."""
    seen = []
    for batch in decoded.batches:
        assert len(batch.events) == len(batch.event_messages)
        accepted = [(m.partition(), m.offset()) for m in batch.event_messages]
        rejected = [(r.message.partition(), r.message.offset()) for r in batch.rejects]
        assert not set(accepted) & set(rejected)
        assert {r.reason for r in batch.rejects} <= KNOWN_REASONS
        seen += accepted + rejected
    assert sorted(seen) == sorted((m.partition(), m.offset()) for m in messages)


def reasons(decoded) -> list[str]:
    return [r.reason for batch in decoded.batches for r in batch.rejects]


# -- event time ----------------------------------------------------------------------


def test_event_far_ahead_of_its_record_timestamp_is_a_future_timestamp_reject():
    values = [event_bytes(), event_bytes(timestamp="2099-01-01T00:00:00Z"), event_bytes()]
    messages = records(values)
    decoded = decode(messages, max_future_skew_s=300)
    assert reasons(decoded) == [FUTURE_TIMESTAMP]
    assert decoded.batches[0].rejects[0].message.offset() == 1
    assert [m.offset() for m in decoded.batches[0].event_messages] == [0, 2]
    assert_each_record_once(messages, decoded)


def test_event_within_the_skew_of_its_record_timestamp_is_accepted():
    ahead = datetime.fromtimestamp(NOW + 299, UTC).isoformat()
    decoded = decode(records([event_bytes(timestamp=ahead)]), max_future_skew_s=300)
    assert reasons(decoded) == [] and len(decoded.batches[0].events) == 1


def test_skew_is_measured_against_each_record_not_the_batch():
    """An event 10 minutes ahead of its own record, inside a batch of later records."""
    event_time = datetime.fromtimestamp(NOW + 600, UTC).isoformat()
    messages = [
        record(event_bytes(timestamp=event_time), 0, record_time=NOW),
        record(event_bytes(timestamp=event_time), 1, record_time=NOW + 3600),
    ]
    decoded = decode(messages, max_future_skew_s=300)
    assert reasons(decoded) == [FUTURE_TIMESTAMP]
    assert decoded.batches[0].rejects[0].message.offset() == 0


def test_replayed_history_with_record_timestamps_of_today_is_accepted_unchanged():
    values = [event_bytes(timestamp=f"2024-10-26T10:{m:02d}:00Z") for m in range(60)]
    decoded = decode(records(values), max_future_skew_s=0)
    assert reasons(decoded) == [] and len(decoded.batches[0].events) == 60


@pytest.mark.parametrize(
    "timestamp",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
    ],
)
def test_event_time_outside_the_sane_range_is_invalid_value(timestamp):
    messages = records([event_bytes(timestamp=timestamp)], record_time=253402300799)
    decoded = decode(messages, max_future_skew_s=10**12)
    assert reasons(decoded) == [schema.INVALID_VALUE]
    with pytest.raises(schema.InvalidEvent) as caught:
        schema.decode_event(event_bytes(timestamp=timestamp))
    assert caught.value.reason == schema.INVALID_VALUE


def test_record_without_a_kafka_timestamp_is_a_no_record_timestamp_reject():
    messages = [
        record(event_bytes(), 0, kind=TIMESTAMP_NOT_AVAILABLE, record_time=-0.001),
        record(event_bytes(), 1, record_time=-0.001),  # CreateTime -1: a hand-made client
        record(event_bytes(), 2),
    ]
    decoded = decode(messages)
    assert reasons(decoded) == [NO_RECORD_TIMESTAMP, NO_RECORD_TIMESTAMP]
    assert [m.offset() for m in decoded.batches[0].event_messages] == [2]


# -- nothing escapes the decoder ------------------------------------------------------


def nested(depth: int) -> bytes:
    return event_bytes()[:-1] + b', "extra": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def test_deeply_nested_json_is_a_reject_not_a_crash():
    messages = records([event_bytes(), nested(1500), b"[" * 5000 + b"]" * 5000, event_bytes()])
    decoded = decode(messages)
    assert len(reasons(decoded)) == 2 and set(reasons(decoded)) <= KNOWN_REASONS
    assert schema.UNDECODABLE in reasons(decoded)
    assert_each_record_once(messages, decoded)


def test_huge_numbers_and_odd_unicode_are_values_not_crashes():
    messages = records(
        [
            event_bytes()[:-1] + b', "duration_ms": 1' + b"0" * 4000 + b"}",
            event_bytes(duration_ms=1e308),
            event_bytes()[:-1] + b', "duration_ms": 1e999999}',
            event_bytes().replace(b"user_42", b"\\ud800"),  # lone surrogate escape
            event_bytes().replace(b"user_42", b"\xed\xa0\x80"),  # surrogate as raw UTF-8
            event_bytes(user_id="\u202eevil\u0000\u0007"),  # RTL override, control chars
        ]
    )
    decoded = decode(messages)
    assert_each_record_once(messages, decoded)
    assert reasons(decoded)[:5] == [
        schema.INVALID_VALUE,
        schema.WRONG_TYPE,
        schema.INVALID_VALUE,
        schema.NOT_JSON,
        schema.NOT_JSON,
    ]
    assert decoded.batches[0].events[0].user_id == "\u202eevil\u0000\u0007"


def pad_to(size: int) -> bytes:
    base = event_bytes()
    return base[:-1] + b', "pad": "' + b"x" * (size - len(base) - 11) + b'"}'


@pytest.mark.parametrize(
    ("size", "accepted"),
    [
        (schema.MAX_EVENT_BYTES - 1, True),
        (schema.MAX_EVENT_BYTES, True),
        (schema.MAX_EVENT_BYTES + 1, False),
    ],
)
def test_records_around_the_size_limit(size, accepted):
    value = pad_to(size)
    assert len(value) == size
    decoded = decode(records([value]))
    assert reasons(decoded) == ([] if accepted else [schema.TOO_LARGE])


# -- properties -----------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(), children),
    max_leaves=200,
)
field_values = {name: st.one_of(st.just(value), json_values) for name, value in VALID.items()}
timestamps = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda t: t.isoformat().replace("+00:00", "Z"))


def nested_value(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + b"0" + closer * depth


hostile_values = st.one_of(
    st.binary(max_size=2048),
    st.binary(min_size=schema.MAX_EVENT_BYTES - 2, max_size=schema.MAX_EVENT_BYTES + 2),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.fixed_dictionaries(field_values).map(lambda v: json.dumps(v).encode()),
    st.builds(lambda t: event_bytes(timestamp=t), timestamps),
    st.builds(
        lambda text: json.dumps({**VALID, "user_id": text}, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        ),
        st.text(alphabet=st.characters(codec=None), min_size=1, max_size=40),
    ),
    st.builds(
        nested_value,
        st.integers(min_value=1, max_value=3000),
        st.sampled_from([b"[", b'{"a":', b'{"event_id":']),
        st.sampled_from([b"]", b"}"]),
    ),
    st.integers(min_value=1, max_value=20_000).map(
        lambda width: b"[" + b",".join([b"1"] * width) + b"]"
    ),
    st.integers(min_value=1, max_value=1_000).map(
        lambda width: (
            event_bytes()[:-1]
            + b","
            + b",".join(b'"k%d": %d' % (i, i) for i in range(width))
            + b"}"
        )
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: event_bytes(duration_ms=n)),
    st.just(None),
)
record_times = st.one_of(
    st.just(NOW), st.integers(min_value=-1, max_value=2**42).map(lambda ms: ms / 1000)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(hostile_values, record_times, st.integers(min_value=0, max_value=2)),
        min_size=1,
        max_size=12,
    ),
    st.integers(min_value=0, max_value=10**6),
)
def test_any_records_decode_to_events_or_known_rejects_each_exactly_once(items, skew):
    messages = [
        record(value, offset, partition, record_time)
        for offset, (value, record_time, partition) in enumerate(items)
    ]
    decoded = decode(messages, max_future_skew_s=skew)
    assert_each_record_once(messages, decoded)
    for batch in decoded.batches:
        for event, message in zip(batch.events, batch.event_messages, strict=True):
            assert schema.EARLIEST_EVENT_TIME <= event.timestamp < schema.LATEST_EVENT_TIME
            assert event.timestamp.timestamp() <= message.timestamp()[1] / 1000 + skew


@settings(max_examples=150, deadline=None)
@given(hostile_values)
def test_decode_event_raises_nothing_but_invalid_event(value):
    try:
        event = schema.decode_event(value)
    except schema.InvalidEvent as invalid:
        assert invalid.reason in schema.REJECTION_REASONS
    else:
        assert schema.EARLIEST_EVENT_TIME <= event.timestamp < schema.LATEST_EVENT_TIME


def test_event_time_bounds_cover_the_batch_across_runs_and_are_dropped_once_one_is_walked():
    times = ["2026-11-29T11:58:00Z", "2026-11-29T11:50:00Z", "2026-11-29T11:59:30Z"]
    # Two runs of partition 0 (a run of partition 1 between them), all decoded at once.
    messages = [
        record(event_bytes(timestamp=times[0]), 0),
        record(event_bytes(timestamp=times[1]), 0, partition=1),
        record(event_bytes(timestamp=times[1]), 1),
        record(event_bytes(timestamp=times[2]), 2),
    ]
    (first, second) = decode(messages, max_future_skew_s=300).batches
    assert first.event_time_bounds == (
        datetime(2026, 11, 29, 11, 50, tzinfo=UTC),
        datetime(2026, 11, 29, 11, 59, 30, tzinfo=UTC),
    )
    assert second.event_time_bounds == (datetime(2026, 11, 29, 11, 50, tzinfo=UTC),) * 2
    walked = decode([*messages, record(b"not json", 3)], max_future_skew_s=300).batches[0]
    assert walked.event_time_bounds is None and len(walked.events) == 3
