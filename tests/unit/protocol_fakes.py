"""In-process stand-ins for Kafka in the apply and emit protocol tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError

from services.common.schema import ClickEvent
from services.processor.decode import PartitionBatch, Reject


class Died(BaseException):
    """A process killed mid-protocol (SIGKILL): nothing after it runs, no handler catches it."""


@dataclass
class FakeMessage:
    """The parts of a confluent_kafka.Message the processor reads."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes = b"{}"
    _key: bytes | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return self._key


@dataclass
class Produced:
    topic: str
    value: bytes
    key: object
    headers: object


# A broker's answer that no retry can change.
REFUSED = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "broker refused the record")


@dataclass
class FakeProducer:
    """Records are queued on produce() and delivered on flush(), unless told otherwise.

    `hold` keeps them queued (the broker does not answer: flush returns how many
    remain); `fail` delivers them with an error; `die` raises Died from flush.
    """

    hold: bool = False
    fail: bool = False
    die: bool = False
    queued: list[tuple[Produced, Callable | None]] = field(default_factory=list)
    delivered: list[Produced] = field(default_factory=list)

    def produce(self, topic, value, key=None, headers=None, on_delivery=None):
        self.queued.append((Produced(topic, value, key, headers), on_delivery))

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        if self.die:
            raise Died()
        if self.hold:
            return len(self.queued)
        queued, self.queued = self.queued, []
        for record, on_delivery in queued:
            if not self.fail:
                self.delivered.append(record)
            if on_delivery is not None:
                on_delivery(REFUSED if self.fail else None, None)
        return 0


def click(at_s: float, user: str = "u1", session: str = "s1") -> ClickEvent:
    return ClickEvent(
        event_id=f"e{at_s}-{user}",
        timestamp=datetime.fromtimestamp(at_s, UTC),
        user_id=user,
        session_id=session,
        event_type="page_view",
        page_url="/",
        page_category="home",
        referrer="google.com",
        device_type="mobile",
        country="US",
        duration_ms=100,
    )


def batch(
    topic: str, partition: int, first_offset: int, events: list[ClickEvent], rejects: int = 0
) -> PartitionBatch:
    """Offsets first_offset.. hold the events, then `rejects` undecodable records."""
    result = PartitionBatch(topic, partition)
    offset = first_offset
    for event in events:
        message = FakeMessage(topic, partition, offset)
        result.messages.append(message)
        result.events.append(event)
        result.event_messages.append(message)
        offset += 1
    for _ in range(rejects):
        message = FakeMessage(topic, partition, offset, b"not json")
        result.messages.append(message)
        result.rejects.append(Reject(message, "not_json", "expected JSON"))
        offset += 1
    return result
