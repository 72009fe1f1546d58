"""Figures the dashboard refreshes in the background: lag, and the live window.

Each `Probe` runs one function on a daemon thread at its own interval and keeps
the latest result, so a slow broker or Redis never freezes the view; the view
reads `Probe.value` and shows how old it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from services.common.logging import get_logger

log = get_logger("consumer.status")

T = TypeVar("T")


@dataclass(frozen=True)
class Reading(Generic[T]):
    value: T | None
    error: str
    at: float  # time.time() of the reading
    ok_at: float  # time.time() of the last successful reading (0: never)


class Probe(Generic[T]):
    """Call `fetch` every `interval_s` on a daemon thread; keep the latest outcome."""

    def __init__(self, name: str, fetch: Callable[[], T | None], interval_s: float):
        self.name = name
        self.fetch = fetch
        self.interval_s = interval_s
        self.failures = 0  # consecutive
        self._reading: Reading[T] = Reading(None, "", 0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe-{name}", daemon=True)

    @property
    def reading(self) -> Reading[T]:
        return self._reading

    def start(self) -> Probe[T]:
        self._thread.start()
        return self

    def stop(self, wait_s: float = 3.0) -> None:
        """Stop and wait briefly for a call in flight, so its client can be closed after."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(wait_s)

    def run_once(self) -> Reading[T]:
        now = time.time()
        try:
            value = self.fetch()
        except Exception as error:
            self.failures += 1
            if self.failures in (1, 10, 100):
                log.warning(
                    "probe failed", probe=self.name, failures=self.failures, error=str(error)
                )
            self._reading = Reading(
                self._reading.value, str(error) or type(error).__name__, now, self._reading.ok_at
            )
        else:
            self.failures = 0
            self._reading = Reading(value, "", now, now)
        return self._reading

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_s)


def processor_lag(admin: AdminClient, topic: str, group: str, timeout_s: float = 5.0) -> int | None:
    """Events the processor group has not committed yet, summed over the topic's partitions.

    The processor keeps its true position in Redis (the offset fence) and
    commits to Kafka asynchronously for lag tools, so this may overstate the
    lag by one commit interval. None when the group has committed nothing.
    """
    admin.poll(0)  # serve queued client log lines, if a logger is configured
    request = [ConsumerGroupTopicPartitions(group)]
    committed_result = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)[
        group
    ].result(timeout=timeout_s)
    committed = {
        tp.partition: tp.offset
        for tp in committed_result.topic_partitions or []
        if tp.topic == topic and tp.offset >= 0
    }
    if not committed:
        return None
    metadata = admin.list_topics(topic, timeout=timeout_s)
    partitions = list(metadata.topics[topic].partitions)
    ends = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
        request_timeout=timeout_s,
    )
    total = 0
    for tp, future in ends.items():
        end = future.result(timeout=timeout_s).offset
        total += max(end - committed.get(tp.partition, 0), 0)
    return total


def describe_age(seconds: float) -> str:
    """'3s', '4m 05s', '2h 10m': how long ago, for status lines."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def compact(count: Any) -> str:
    """At most 5 characters: 999, 3.0k, 12k, 1.2M."""
    if count is None:
        return "-"
    value = float(count)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            scaled = value / limit
            return f"{scaled:.1f}{suffix}" if scaled < 9.95 else f"{scaled:.0f}{suffix}"
    return f"{int(value)}"
