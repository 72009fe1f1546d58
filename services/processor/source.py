"""What the processor asks the broker about its source topic: partition count, log ends.

Both are asked outside the consumer loop, so a broker that does not answer must
not stop processing: an unknown log end counts the partition as active (it may
hold windows open a little longer, never close one early), and an unanswered
metadata request leaves the partition count as it was.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from services.common.errors import TopicNotFound
from services.common.kafka import partition_count
from services.common.observability import CONSUMER_LAG, WATERMARK_SECONDS
from services.processor.outage import Outage
from services.processor.settings import LOG_END_TIMEOUT_S, PARTITION_REFRESH_S
from statestore import PartitionState


class SourceTopic:
    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        outage: Outage,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.consumer = consumer
        self.topic = topic
        self.outage = outage
        self._clock = clock
        self._checked_at = clock()

    def log_end(self, partition: int) -> int:
        """The partition's current end offset, asked of the broker (not the fetch cache)."""
        try:
            _low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=LOG_END_TIMEOUT_S, cached=False
            )
        except KafkaException as error:
            self.outage.failed("log-end query", error, topic=self.topic, partition=partition)
            return sys.maxsize  # unknown end: not idle
        self.outage.succeeded()
        return high

    def partitions_now(self, force: bool = False) -> int | None:
        """The topic's partition count, at most every PARTITION_REFRESH_S unless `force`;
        None in between or when the broker does not answer."""
        if not force and self._clock() - self._checked_at < PARTITION_REFRESH_S:
            return None
        self._checked_at = self._clock()
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=LOG_END_TIMEOUT_S)
            partitions = partition_count(metadata, self.topic)
        except (KafkaException, TopicNotFound) as error:
            self.outage.failed("metadata", error, topic=self.topic)
            return None
        self.outage.succeeded()
        return partitions

    def export_gauges(self, state: PartitionState) -> None:
        """The partition's watermark and its lag behind the fetcher's last known log end."""
        label = str(state.partition)
        if state.watermark_s is not None:
            WATERMARK_SECONDS.labels(label).set(state.watermark_s)
        _low, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.topic, state.partition), cached=True
        )
        if high >= 0:
            CONSUMER_LAG.labels(label).set(max(high - (state.fence + 1), 0))
