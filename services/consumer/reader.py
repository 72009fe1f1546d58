"""Reading the metrics topic: the recent past first, then live.

The dashboard must show the newest completed window at once, whatever the
group's committed offsets say, so the reader assigns every partition itself
(every dashboard sees every window; a group subscription would split the
partitions between two people watching) and starts each partition a bounded
number of records before its end: `high - tail`, or the earliest retained
offset for `--from-beginning`. Records before the end offsets seen at start
are the *backfill*; everything after is *live*.

The consumer group (DASHBOARD_GROUP) is used for manual commits only, so lag
tools see how far each dashboard has read; the dashboard never resumes from
it.

Every record passes `sanitize.admit` before anyone sees it: one that fails is
skipped, logged with its topic, partition, offset and reason, and counted in
`clickstream_dashboard_invalid_records_total{reason}`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.common import observability as obs
from services.common.config import Config
from services.common.kafka import make_consumer, partition_count, wait_for_broker
from services.common.logging import get_logger
from services.common.window_record import WindowRecord
from services.consumer.sanitize import INVALID_REASONS, Invalid, admit

log = get_logger("consumer.reader")

_UNREACHABLE = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}
RECHECK_S = 3.0


@dataclass
class Backfill:
    """What lay on the topic at start: records in offset order per partition."""

    records: list[WindowRecord] = field(default_factory=list)
    end_offsets: dict[int, int] = field(default_factory=dict)
    complete: bool = True  # False when the deadline passed before every partition's end

    @property
    def topic_empty(self) -> bool:
        return not any(self.end_offsets.values())


def silent_logger() -> logging.Logger:
    """A logger for librdkafka that drops its lines."""
    logger = logging.getLogger("clickstream.librdkafka.silent")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


class MetricsReader:
    """A consumer assigned to every partition of the metrics topic."""

    def __init__(
        self,
        config: Config,
        group: str,
        tail: int,
        from_beginning: bool = False,
        quiet: bool = False,
        clock: Callable[[], float] = time.time,
    ):
        self.topic = config.metrics_topic
        self.max_future_s = config.dashboard_max_future_seconds
        self.clock = clock
        self.tail = tail
        self.from_beginning = from_beginning
        extra: dict = {"enable.partition.eof": True, "error_cb": self._on_error}
        if quiet:
            # librdkafka writes its own log lines to stderr, which would tear a
            # full-screen view; errors still reach error_cb and the status line.
            extra["logger"] = silent_logger()
        self.consumer: Consumer = make_consumer(config, group, **extra)
        self.partitions: list[int] = []
        self.last_error: str = ""
        self.invalid: Counter[str] = Counter()  # records skipped, by reason
        for reason in INVALID_REASONS:  # every reason on /metrics at 0, so rate() sees the first
            obs.DASHBOARD_INVALID_RECORDS.labels(reason)
        self._early_live: list[Message] = []
        self._down_since: float | None = None
        self._next_check = 0.0

    def _on_error(self, error: KafkaError) -> None:
        self.last_error = str(error)
        if error.code() in _UNREACHABLE and self._down_since is None:
            self._down_since = time.monotonic()
        log.warning("kafka client error", error=str(error))

    def unreachable_for(self) -> float:
        """Seconds the broker has been unreachable (0 when it answers).

        librdkafka reconnects on its own and reports the loss through the error
        callback; a metadata request, at most every few seconds, tells when it is back.
        """
        if self._down_since is None:
            return 0.0
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RECHECK_S
            try:
                self.consumer.list_topics(self.topic, timeout=2)
            except KafkaException:
                pass
            else:
                self._down_since = None
                return 0.0
        return now - self._down_since

    def open(self, attempts: int = 5) -> None:
        """Check the broker and topic (bounded retries) and assign every partition."""
        metadata = wait_for_broker(self.consumer, attempts=attempts)
        count = partition_count(metadata, self.topic)
        self.partitions = list(range(count))

    def backfill(self, timeout_s: float = 30.0) -> Backfill:
        """Assign each partition at its start offset and read up to its end offset at start."""
        result = Backfill()
        assignment = []
        for partition in self.partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10
            )
            start = low if self.from_beginning else max(low, high - self.tail)
            result.end_offsets[partition] = high
            assignment.append(TopicPartition(self.topic, partition, start))
        self.consumer.assign(assignment)
        ends = result.end_offsets
        pending = {tp.partition for tp in assignment if tp.offset < ends[tp.partition]}
        early_live: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for message in self.consumer.consume(num_messages=1000, timeout=0.5):
                partition = message.partition()
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(partition)
                    continue
                if message.offset() >= result.end_offsets[partition]:
                    early_live.append(message)
                    pending.discard(partition)
                    continue
                record = self._decode(message)
                if record is not None:
                    result.records.append(record)
                if message.offset() >= result.end_offsets[partition] - 1:
                    pending.discard(partition)
        if pending:
            result.complete = False
            log.warning("backfill incomplete at deadline", partitions=sorted(pending))
        self._early_live = early_live
        return result

    def poll(self, timeout_s: float) -> list[WindowRecord]:
        """Live records that arrived since the last call (waits at most `timeout_s`)."""
        messages, self._early_live = self._early_live, []
        if not messages:
            messages = self.consumer.consume(num_messages=500, timeout=timeout_s)
        records = []
        for message in messages:
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    self.last_error = str(message.error())
                continue
            record = self._decode(message)
            if record is not None:
                records.append(record)
        return records

    def commit(self) -> None:
        """Commit what has been read (asynchronously), for lag tools; never blocks the view."""
        try:
            self.consumer.commit(asynchronous=True)
        except Exception as error:  # nothing stored yet, or the group coordinator is away
            if "_NO_OFFSET" not in str(error):
                log.debug("commit skipped", error=str(error))

    def lag(self) -> int | None:
        """Records between this reader's position and the end of each partition, summed."""
        assigned = [TopicPartition(self.topic, p) for p in self.partitions]
        total = 0
        for tp in self.consumer.position(assigned):
            low, high = self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            position = tp.offset if tp.offset >= 0 else low
            total += max(high - position, 0)
        return total

    def close(self) -> None:
        with contextlib.suppress(KafkaException):  # nothing read, nothing to commit
            self.consumer.commit(asynchronous=False)
        self.consumer.close()

    def _decode(self, message: Message) -> WindowRecord | None:
        value = message.value()
        if value is None:
            return None  # a tombstone: nothing to show
        admitted = admit(value, self.clock(), self.max_future_s)
        if isinstance(admitted, Invalid):
            self.invalid[admitted.reason] += 1
            obs.DASHBOARD_INVALID_RECORDS.labels(admitted.reason).inc()
            log.warning(
                "invalid metrics record skipped",
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                reason=admitted.reason,
                detail=admitted.detail,
            )
            return None
        return admitted
