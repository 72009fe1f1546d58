"""The one bounded produce helper: waits out a full queue, then a typed error."""

import pytest

from services.common.errors import ClickstreamError, PublishError
from services.common.kafka import produce


class QueueFullFor:
    """A producer whose local queue is full for the first `full` calls."""

    def __init__(self, full: int):
        self.full = full
        self.produced: list[tuple] = []
        self.polls = 0

    def produce(self, topic, value, **kwargs):
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append((topic, value, kwargs))

    def poll(self, _timeout):
        self.polls += 1


class FakeClock:
    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_a_queue_that_drains_gets_the_record_through_after_polling():
    producer = QueueFullFor(full=3)
    produce(producer, "t", b"v", key=b"k", clock=FakeClock(0.01))
    assert producer.produced == [("t", b"v", {"key": b"k"})]
    assert producer.polls == 3


def test_a_queue_that_stays_full_past_the_budget_raises_publish_error():
    producer = QueueFullFor(full=10_000)
    with pytest.raises(PublishError, match="stayed full for 2 s") as raised:
        produce(producer, "events", b"v", budget_s=2.0, clock=FakeClock(0.5))
    assert isinstance(raised.value, ClickstreamError)
    assert producer.produced == []
