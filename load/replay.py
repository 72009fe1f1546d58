"""Replay a dataset into the events topic: at full speed, at N events/s, or K times its pace.

Keys and values go out exactly as the file holds them, through the idempotent
producer (acks=all), so a replay never duplicates or reorders a key's records.
Speed comes from doing almost nothing per record in Python: values are decoded
from the file a chunk at a time, produce() runs in a tight loop with large
batches, lz4 and a long linger, and the producer reports deliveries only when
they fail (`delivery.report.only.error`), so no Python callback runs per event.

With `shift_seconds` (see shift_for_now), every valid event's timestamp moves
by a whole number of windows, e.g. so the first event lands in the current
window: window alignment is kept and the ground truth only needs its window
keys moved (load.truth.shift).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from confluent_kafka import KafkaError, Message, Producer

from load.dataset import EVENT_KINDS, read_chunks, read_columns
from load.poison import SHIFTED_KINDS
from services.common.config import Config
from services.common.kafka import make_producer
from services.common.kafka import produce as produce_bounded
from services.common.logging import get_logger
from services.common.schema import InvalidEvent, decode_event, encode_event
from services.common.windowing import Windowing

log = get_logger("load.replay")

Key = str | bytes | None
Value = msgspec.Raw | bytes | None

PACED_SLICE = 200  # records between progress reports of a paced replay
# What the broker has not acknowledged this long after the last record is counted as
# undelivered (and the replay exits 1); a healthy broker needs well under a second.
FINAL_FLUSH_TIMEOUT_S = 60

# Throughput settings: few large lz4 batches; librdkafka's queue deep enough to
# keep the sender busy while Python decodes the next chunk.
FAST_PRODUCER = {
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "lz4",
    "delivery.report.only.error": True,
}
# The file is decompressed on a helper thread; zlib drops the GIL while it
# inflates but must take it back between output blocks. With the default 5 ms
# switch interval the busy produce loop starves it; 0.2 ms lets both run.
FAST_SWITCH_INTERVAL_S = 0.0002
# Paced replays keep latency low instead.
PACED_PRODUCER = {**FAST_PRODUCER, "linger.ms": 5}


@dataclass(frozen=True)
class Pacing:
    """At most one of `rate` (events/s) and `speed` (x original pacing); neither: max speed."""

    rate: float | None = None
    speed: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.speed is not None:
            raise ValueError("choose either a rate or a speed, not both")

    @property
    def paced(self) -> bool:
        return self.rate is not None or self.speed is not None

    def describe(self) -> str:
        if self.rate is not None:
            return f"{self.rate:g} events/s"
        if self.speed is not None:
            return f"x{self.speed:g} original pacing"
        return "max speed"


@dataclass
class ReplayResult:
    events: int = 0
    bytes: int = 0
    seconds: float = 0.0
    delivery_errors: int = 0
    undelivered: int = 0
    shift_seconds: int = 0
    first_error: str = ""
    errors_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.delivery_errors == 0 and self.undelivered == 0

    def summary(self) -> dict[str, object]:
        return {
            "events": self.events,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events_per_s),
            "mb_per_s": round(self.bytes / self.seconds / 1e6, 1) if self.seconds else 0.0,
            "delivery_errors": self.delivery_errors,
            "undelivered": self.undelivered,
            "shift_seconds": self.shift_seconds,
        }


class _Deliveries:
    """Counts failed deliveries; with delivery.report.only.error it runs only on failures."""

    def __init__(self, result: ReplayResult):
        self.result = result

    def __call__(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            return
        self.result.delivery_errors += 1
        reason = error.name()
        self.result.errors_by_reason[reason] = self.result.errors_by_reason.get(reason, 0) + 1
        self.result.first_error = self.result.first_error or str(error)


def shift_for_now(first_arrival: float, window_seconds: int, now: float | None = None) -> int:
    """Whole windows that move `first_arrival` into the current window (never into the future)."""
    now = time.time() if now is None else now
    return Windowing(window_seconds).start_of(now - first_arrival)


def first_arrival(path: Path) -> float:
    for chunk in read_chunks(path):
        if chunk:
            return chunk[0].arrival
    raise ValueError(f"{path} holds no records")


def shift_value(value: Value, kind: str | None, seconds: int) -> Value:
    """The value with its event timestamp moved, if it is a valid event; else unchanged."""
    if seconds == 0 or value is None:
        return value
    if kind is not None and kind not in EVENT_KINDS and kind not in SHIFTED_KINDS:
        return value  # planted malformed: replayed byte for byte
    try:
        event = decode_event(bytes(value))
    except InvalidEvent:
        return value
    moved = datetime.fromtimestamp(event.timestamp.timestamp() + seconds, UTC)
    return encode_event(msgspec.structs.replace(event, timestamp=moved))


def replay(
    config: Config,
    path: Path,
    topic: str,
    pacing: Pacing = Pacing(),
    shift_seconds: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Produce every record of `path` to `topic`; returns the summary once all are delivered.

    `progress(events_sent, bytes_sent)` is called about every chunk.
    """
    result = ReplayResult(shift_seconds=shift_seconds)
    on_delivery = _Deliveries(result)
    # The delivery callback is the producer's default, so produce() takes no keyword
    # arguments in the hot loop; with delivery.report.only.error it runs only on failures.
    settings = PACED_PRODUCER if pacing.paced else FAST_PRODUCER
    producer = make_producer(config, **settings, on_delivery=on_delivery)
    started = time.monotonic()
    pacer = _Pacer(pacing, started) if pacing.paced else None
    gc_was_enabled, switch_interval = gc.isenabled(), sys.getswitchinterval()
    if pacer is None:
        # Nothing in the loop creates reference cycles; collections over the chunks'
        # short-lived objects would only cost time.
        gc.disable()
        sys.setswitchinterval(FAST_SWITCH_INTERVAL_S)
    try:
        for keys, values, arrivals in _slices(_chunks(path, shift_seconds), pacer is not None):
            if pacer is not None:
                pacer.send(producer, topic, keys, values, arrivals)
            else:
                _send_fast(producer, topic, keys, values)
            result.events += len(values)
            result.bytes += sum(map(len, filter(None, values))) + sum(map(len, filter(None, keys)))
            producer.poll(0)
            if progress is not None:
                progress(result.events, result.bytes)
    finally:
        sys.setswitchinterval(switch_interval)
        if gc_was_enabled:
            gc.enable()
    result.undelivered = producer.flush(FINAL_FLUSH_TIMEOUT_S)
    result.seconds = time.monotonic() - started
    return result


def _chunks(path: Path, shift_seconds: int) -> Iterator[tuple[list[Key], list[Value], list[float]]]:
    for columns in read_columns(path):
        values = columns.values
        if shift_seconds:
            values = [
                shift_value(value, kind, shift_seconds)
                for value, kind in zip(values, columns.kinds, strict=True)
            ]
        yield columns.keys, values, columns.arrivals


def _slices(
    chunks: Iterator[tuple[list[Key], list[Value], list[float]]], paced: bool
) -> Iterator[tuple[list[Key], list[Value], list[float]]]:
    """Whole chunks at full speed; small slices when paced, so progress shows often."""
    for keys, values, arrivals in chunks:
        if not paced:
            yield keys, values, arrivals
            continue
        for start in range(0, len(values), PACED_SLICE):
            end = start + PACED_SLICE
            yield keys[start:end], values[start:end], arrivals[start:end]


def _send_fast(producer: Producer, topic: str, keys: list[Key], values: list[Value]) -> None:
    produce = producer.produce
    for key, value in zip(keys, values, strict=True):
        try:
            produce(topic, value, key)
        except BufferError:  # the queue is full: the bounded helper waits for it to drain
            produce_bounded(producer, topic, value, key=key)


class _Pacer:
    """When each record is due: at start + n/rate, or at its arrival scaled by 1/speed."""

    def __init__(self, pacing: Pacing, started: float):
        self.pacing = pacing
        self.started = started
        self.origin: float | None = None
        self.sent = 0

    def send(
        self,
        producer: Producer,
        topic: str,
        keys: list[Key],
        values: list[Value],
        arrivals: list[float],
    ) -> None:
        if self.origin is None and arrivals:
            self.origin = arrivals[0]
        rate, speed, started, origin = (
            self.pacing.rate,
            self.pacing.speed,
            self.started,
            self.origin,
        )
        sent = self.sent
        now = time.monotonic()
        for key, value, arrival in zip(keys, values, arrivals, strict=True):
            due = started + (sent / rate if rate is not None else (arrival - origin) / speed)
            if due > now:  # `now` may be stale; refresh it only when it says we are early
                now = time.monotonic()
                while due > now:
                    producer.poll(min(due - now, 0.05))
                    now = time.monotonic()
            produce_bounded(producer, topic, value, key=key)
            sent += 1
        self.sent = sent
