"""Step 1, decode: one consume() result into typed events and rejects, per partition.

Guarantee: every record ends up in exactly one of its partition batch's
`events` or `rejects`, in offset order, so the fence can move past the whole
batch and nothing is silently dropped; no record can make decode() raise.
Partitions that reported their end are listed so the caller can mark them
caught up.

Event time is bounded by the record's own Kafka timestamp: an event more than
`max_future_skew_s` ahead of it is a `future_timestamp` reject, so no client
clock can move a watermark beyond what Kafka saw. The record timestamp, not
this replica's clock, is the reference: it travels with the record, so a
replay decides exactly as the first run did. A record without a timestamp
(TIMESTAMP_NOT_AVAILABLE, or a negative one a hand-made client can write)
gives its event time no bound, so it is a `no_record_timestamp` reject; every
producer since Kafka 0.10 stamps its records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Final

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, Message

from services.common.schema import (
    EARLIEST_EVENT_TIME,
    EVENT_DECODER,
    LATEST_EVENT_TIME,
    MAX_EVENT_BYTES,
    UNDECODABLE,
    ClickEvent,
    InvalidEvent,
    check_event_time,
    decode_event,
)
from services.processor import columns

FUTURE_TIMESTAMP: Final = "future_timestamp"
NO_RECORD_TIMESTAMP: Final = "no_record_timestamp"
DEFAULT_MAX_FUTURE_SKEW_S: Final = 300


@dataclass(frozen=True)
class Reject:
    message: Message
    reason: str
    detail: str


@dataclass
class PartitionBatch:
    topic: str
    partition: int
    messages: list[Message] = field(default_factory=list)
    events: list[ClickEvent] = field(default_factory=list)
    event_messages: list[Message] = field(default_factory=list)  # parallel to events
    rejects: list[Reject] = field(default_factory=list)
    # The earliest and latest event time in `events`, so fold need not compare them all
    # again; None when unknown (a run of the batch was walked record by record).
    event_time_bounds: tuple[datetime, datetime] | None = None
    walked: bool = False

    @property
    def first_offset(self) -> int:
        return self.messages[0].offset()

    @property
    def last_offset(self) -> int:
        return self.messages[-1].offset()


@dataclass
class Decoded:
    batches: list[PartitionBatch]
    reached_end: dict[int, int]  # partition -> log end, for end-of-partition events
    errors: list[KafkaError]


def decode(
    messages: list[Message], max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> Decoded:
    """Split by partition and decode.

    consume() returns records in runs per partition. Each run is decoded with
    map() over the C decoder and its event times checked at once: the latest
    event time against the earliest record timestamp, the extremes against the
    sane range. Only a run holding an invalid record or an event time that
    fails those checks is walked record by record, to name each reject's reason.
    """
    batches: dict[int, PartitionBatch] = {}
    reached_end: dict[int, int] = {}
    errors: list[KafkaError] = []
    if any(map(_error, messages)):
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                reached_end[message.partition()] = message.offset()
            else:
                errors.append(error)
    else:
        records = messages
    for partition, run_iter in groupby(records, key=_partition):
        run = list(run_iter)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = PartitionBatch(run[0].topic(), partition)
        batch.messages += run
        values = list(map(_value, run))
        try:
            if max(map(len, values)) > MAX_EVENT_BYTES:
                raise ValueError("oversized record in run")
            events = list(map(_decode_json, values))
            earliest, latest = columns.time_bounds(events)
            in_bounds = _event_times_in_bounds(earliest, latest, run, max_future_skew_s)
        except Exception:  # anything at all: the slow path names each record's reason
            in_bounds = False
            events = None
        if in_bounds:
            batch.events += events
            batch.event_messages += run
            if not batch.walked:
                bounds = batch.event_time_bounds
                batch.event_time_bounds = (
                    (earliest, latest)
                    if bounds is None
                    else (min(bounds[0], earliest), max(bounds[1], latest))
                )
        else:
            batch.walked, batch.event_time_bounds = True, None
            _decode_one_by_one(batch, run, values, events, max_future_skew_s)
    return Decoded(list(batches.values()), reached_end, errors)


def _event_times_in_bounds(
    earliest: datetime, latest: datetime, run: list[Message], skew_s: float
) -> bool:
    """True if every event time is in the sane range and within skew of its record's."""
    # librdkafka reports a missing record timestamp as -1 ms, which no event time in
    # the sane range can pass, so such a run is walked.
    if earliest < EARLIEST_EVENT_TIME or latest >= LATEST_EVENT_TIME:
        return False
    earliest_record_ms = min(map(_millis, map(_record_timestamp, run)))
    return latest.timestamp() <= earliest_record_ms / 1000 + skew_s


def _decode_one_by_one(
    batch: PartitionBatch,
    run: list[Message],
    values: list,
    decoded: list[ClickEvent] | None,
    skew_s: float,
) -> None:
    for index, message in enumerate(run):
        try:
            event = decode_event(values[index]) if decoded is None else decoded[index]
            check_event_time(event)
            _check_future_skew(event, message, skew_s)
        except InvalidEvent as invalid:
            batch.rejects.append(Reject(message, invalid.reason, invalid.detail))
            continue
        except Exception as error:  # a bug here must cost one record, not the replica
            batch.rejects.append(Reject(message, UNDECODABLE, f"{type(error).__name__}: {error}"))
            continue
        batch.events.append(event)
        batch.event_messages.append(message)


def _check_future_skew(event: ClickEvent, message: Message, skew_s: float) -> None:
    kind, record_ms = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or record_ms < 0:
        raise InvalidEvent(
            NO_RECORD_TIMESTAMP,
            f"record has no Kafka timestamp to bound event time {event.timestamp.isoformat()}",
        )
    ahead_s = event.timestamp.timestamp() - record_ms / 1000
    if ahead_s > skew_s:
        # record_ms is printed raw: a hostile CreateTime may not convert to a datetime.
        raise InvalidEvent(
            FUTURE_TIMESTAMP,
            f"event time {event.timestamp.isoformat()} is {ahead_s:.0f} s ahead of its record "
            f"timestamp ({record_ms} ms), more than the {skew_s:g} s allowed",
        )


_error = Message.error
_partition = Message.partition
_value = Message.value
_record_timestamp = Message.timestamp
_millis = itemgetter(1)
_decode_json = EVENT_DECODER.decode
