"""Step 1, decode: Kafka records of one partition into typed events and rejects.

Guarantees: every record of the batch ends up in exactly one of `events` or
`rejects`, in offset order, so the fence can move past the whole batch and
nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import Message

from services.common.schema import ClickEvent, InvalidEvent, decode_event


@dataclass(frozen=True)
class Reject:
    message: Message
    reason: str
    detail: str


@dataclass
class PartitionBatch:
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    messages: list[Message]
    events: list[ClickEvent] = field(default_factory=list)
    event_offsets: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def split_by_partition(messages: list[Message]) -> dict[int, list[Message]]:
    """Group a consume() result by partition, keeping each partition's offset order."""
    by_partition: dict[int, list[Message]] = {}
    for message in messages:
        by_partition.setdefault(message.partition(), []).append(message)
    return by_partition


def decode(messages: list[Message]) -> PartitionBatch:
    """Decode one partition's records; invalid ones become Rejects with a reason."""
    first = messages[0]
    batch = PartitionBatch(
        first.topic(), first.partition(), first.offset(), messages[-1].offset(), messages
    )
    events, offsets = batch.events, batch.event_offsets
    for message in messages:
        try:
            events.append(decode_event(message.value()))
            offsets.append(message.offset())
        except InvalidEvent as error:
            batch.rejects.append(Reject(message, error.reason, error.detail))
    return batch
