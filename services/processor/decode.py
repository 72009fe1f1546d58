"""Step 1, decode: one consume() result into typed events and rejects, per partition.

Guarantee: every record ends up in exactly one of its partition batch's
`events` or `rejects`, in offset order, so the fence can move past the whole
batch and nothing is silently dropped. Partitions that reported their end are
listed so the caller can mark them caught up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from confluent_kafka import KafkaError, Message

from services.common.schema import (
    EVENT_DECODER,
    MAX_EVENT_BYTES,
    ClickEvent,
    InvalidEvent,
    decode_event,
)


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


def decode(messages: list[Message]) -> Decoded:
    """Split by partition and decode.

    consume() returns records in runs per partition. Each run is decoded with
    map() over the C decoder; only a run holding an invalid record is walked
    record by record, through decode_event, to name each reject's reason.
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
        except Exception:
            _decode_one_by_one(batch, run, values)
        else:
            batch.events += events
            batch.event_messages += run
    return Decoded(list(batches.values()), reached_end, errors)


def _decode_one_by_one(batch: PartitionBatch, run: list[Message], values: list) -> None:
    for message, value in zip(run, values, strict=True):
        try:
            event = decode_event(value)
        except InvalidEvent as invalid:
            batch.rejects.append(Reject(message, invalid.reason, invalid.detail))
            continue
        batch.events.append(event)
        batch.event_messages.append(message)


_error = Message.error
_partition = Message.partition
_value = Message.value
_decode_json = EVENT_DECODER.decode
