"""`clickstream process`: the stream processor.

Each record takes one path, one module per step:

    poll (this module) -> decode -> fold -> apply -> emit

The replica keeps nothing that matters between batches: Redis holds window
state, offset fences and watermarks, so any replica can die at any instruction
and any other can take over its partitions. A timer (punctuation) heartbeats
the partitions this replica has read to the end and runs the emitter.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from services.common import config as cfg
from services.common.config import (
    Config,
    Setting,
    non_negative_int,
    positive_int,
)
from services.common.kafka import make_consumer, make_producer, partition_count, wait_for_broker
from services.common.logging import get_logger
from services.common.observability import (
    ASSIGNED_PARTITIONS,
    CONSUMER_LAG,
    REBALANCES,
    RECORDS_CONSUMED,
    WATERMARK_SECONDS,
    Health,
    serve,
)
from services.common.shutdown import Stopper
from services.common.windowing import Windowing
from services.processor.apply import BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetters
from services.processor.decode import decode
from services.processor.emit import Emitter
from services.processor.watermark import stream_time
from statestore import ApplyStatus, PartitionState, StateStore
from statestore.published import PublishedStore

log = get_logger("processor")

# Measured with `clickstream bench`: prefetch enough to keep the loop busy, bounded so
# RSS stays near 120 MB (lz4 batches decompress to several times their fetched size).
FETCH_SETTINGS = {
    "fetch.max.bytes": 4 * 1024 * 1024,
    "max.partition.fetch.bytes": 1 * 1024 * 1024,
    "queued.max.messages.kbytes": 4 * 1024,
    # Default 1000 ms: with a bounded queue the fetcher would idle a second every
    # time the loop fell behind by one batch.
    "fetch.queue.backoff.ms": 5,
}

SETTINGS = (
    cfg.WINDOW_SECONDS,
    cfg.GRACE_SECONDS,
    Setting(
        "IDLE_PARTITION_SECONDS",
        30,
        "a caught-up partition with no new records for this long stops holding windows",
        parse=positive_int,
    ),
    cfg.ALLOWED_LATENESS_SECONDS,
    Setting("STATE_TTL_SECONDS", 14400, "TTL of window state in Redis", parse=positive_int),
    cfg.ROLLUP_RETENTION_DAYS,
    Setting(
        "START_FROM",
        "earliest",
        "where a partition with no fence begins",
        choices=("earliest", "latest"),
    ),
    cfg.PROCESSOR_GROUP,
    cfg.STATE_NAMESPACE,
    Setting("BATCH_MAX_RECORDS", 5000, "records per poll", parse=positive_int),
    Setting("BATCH_MAX_WAIT_MS", 100, "longest wait for a batch to fill", parse=positive_int),
    Setting(
        "EMIT_INTERVAL_MS", 250, "punctuation period: heartbeat and emitter", parse=positive_int
    ),
    Setting("SESSION_TIMEOUT_MS", 6000, "consumer group session timeout", parse=positive_int),
    Setting(
        "METRICS_PORT", 9100, "port of /metrics, /healthz, /readyz (0: off)", parse=non_negative_int
    ),
    Setting("PROCESSOR_ID", f"{socket.gethostname()}-{os.getpid()}", "this replica's name"),
    Setting(
        "GROUP_INSTANCE_ID",
        "",
        "static group membership: a stable name per replica (a StatefulSet pod name) lets a "
        "restarted replica take its partitions back without a rebalance; empty: dynamic",
    ),
)


class Processor:
    def __init__(self, config: Config):
        self.config = config
        self.topic = config.events_topic
        self.windowing = Windowing(
            config.window_seconds, config.grace_seconds, config.allowed_lateness_seconds
        )
        self.store = StateStore.from_url(
            config.redis_url, config.state_namespace, self.topic, ttl_s=config.state_ttl_seconds
        )
        self.consumer = make_consumer(
            config,
            config.consumer_group,
            **{
                "enable.partition.eof": True,
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(config.session_timeout_ms // 6, 100),
                **FETCH_SETTINGS,
                "client.id": config.processor_id,
                **(
                    {"group.instance.id": config.group_instance_id}
                    if config.group_instance_id
                    else {}
                ),
            },
        )
        self.dead_letters = DeadLetters(make_producer(config), config.dlq_topic)
        self.applier = BatchApplier(
            self.store, self.dead_letters, self.windowing, config.processor_id
        )
        self.metrics_producer = make_producer(config, **{"linger.ms": 0})
        self.cursors: dict[int, PartitionCursor] = {}
        self.health = Health()
        self.partitions = 0
        self.emitter: Emitter | None = None

    # -- partition ownership ----------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Seek every newly owned partition to its fence + 1, read from Redis."""
        states = self.store.partition_states(tp.partition for tp in partitions)
        for tp in partitions:
            state = states[tp.partition]
            self.cursors[tp.partition] = _cursor(state)
            tp.offset = self._start_offset(state.fence)
        consumer.assign(partitions)
        REBALANCES.labels("assign").inc()
        ASSIGNED_PARTITIONS.set(len(self.cursors))
        log.info(
            "partitions assigned",
            topic=self.topic,
            partitions={tp.partition: self.cursors[tp.partition].fence for tp in partitions},
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop(partitions, "revoke")
        log.info(
            "partitions revoked", topic=self.topic, partitions=[p.partition for p in partitions]
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another replica may own these already; the fence stops any batch still in flight.
        self._drop(partitions, "lost")
        log.warning(
            "partitions lost", topic=self.topic, partitions=[p.partition for p in partitions]
        )

    def _drop(self, partitions: list[TopicPartition], kind: str) -> None:
        for tp in partitions:
            self.cursors.pop(tp.partition, None)
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(str(tp.partition))
        REBALANCES.labels(kind).inc()
        ASSIGNED_PARTITIONS.set(len(self.cursors))

    def _start_offset(self, fence: int) -> int:
        if fence >= 0:
            return fence + 1
        return OFFSET_BEGINNING if self.config.start_from == "earliest" else OFFSET_END

    def _resync(self, partition: int, state: PartitionState | None = None) -> None:
        """The fence moved under this replica: take Redis' word and seek to fence + 1."""
        if state is None:
            state = self.store.partition_states([partition])[partition]
        self.cursors[partition] = _cursor(state)
        self.consumer.seek(TopicPartition(self.topic, partition, self._start_offset(state.fence)))
        log.info("partition re-synced", topic=self.topic, partition=partition, fence=state.fence)

    # -- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        metadata = wait_for_broker(self.consumer)
        self.partitions = partition_count(metadata, self.topic)
        self.store.record_topology(self.partitions, self.windowing.size_s)
        self.emitter = Emitter(
            self.store,
            self.metrics_producer,
            self.config.metrics_topic,
            self.windowing,
            self.partitions,
            owner=self.config.processor_id,
            lease_ms=max(2000, 8 * self.config.emit_interval_ms),
            published=PublishedStore(
                self.store, retention_s=int(self.config.rollup_retention_days * 86400)
            ),
        )
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.health.ready = True
        log.info(
            "processor started",
            source=self.topic,
            sink=self.config.metrics_topic,
            window_seconds=self.windowing.size_s,
            partitions=self.partitions,
        )
        interval = self.config.emit_interval_ms / 1000
        next_tick = time.monotonic()
        max_records, max_wait = self.config.batch_max_records, self.config.batch_max_wait_ms / 1000
        try:
            while not stop.is_set():
                self.health.beat()
                self._process(self.consumer.consume(max_records, max_wait))
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + interval
                    self._punctuate()
        finally:
            self._shutdown()
        return 0

    def _process(self, messages: list) -> None:
        """decode -> fold -> apply, one partition batch at a time; then commit for lag tools."""
        decoded = decode(messages)
        for error in decoded.errors:
            log.error("consume error", topic=self.topic, error=str(error))
        applied = []
        for batch in decoded.batches:
            partition = batch.partition
            cursor = self.cursors.get(partition)
            if cursor is None:
                continue  # revoked while the batch was in flight
            cursor.caught_up_offset = None
            RECORDS_CONSUMED.labels(str(partition)).inc(len(batch.messages))
            if self.applier.apply(batch, cursor) is ApplyStatus.APPLIED:
                applied.append(TopicPartition(self.topic, partition, batch.last_offset + 1))
            else:
                self._resync(partition)
        if applied:
            self.consumer.commit(offsets=applied, asynchronous=True)
        # After the records: an end-of-partition event follows the partition's last record.
        for partition, end_offset in decoded.reached_end.items():
            cursor = self.cursors.get(partition)
            if cursor is not None:
                cursor.caught_up_offset = end_offset

    def _punctuate(self) -> None:
        """Heartbeat caught-up partitions, catch fences that moved (a wiped Redis), emit."""
        now_ms = int(time.time() * 1000)
        caught_up = {
            p: cursor.caught_up_offset
            for p, cursor in self.cursors.items()
            if cursor.caught_up_offset is not None
        }
        if caught_up:
            self.store.mark_caught_up(caught_up, now_ms)
        states = self.store.partition_states(range(self.partitions))
        for partition, cursor in list(self.cursors.items()):
            state = states[partition]
            if state.fence != cursor.fence:
                log.warning(
                    "fence changed outside this replica",
                    topic=self.topic,
                    partition=partition,
                    expected_fence=cursor.fence,
                    stored_fence=state.fence,
                )
                self._resync(partition, state)
            self._export_gauges(partition, state)
        self.emitter.tick(
            lambda: stream_time(
                states, now_ms, self.config.idle_partition_seconds * 1000, self._log_end
            ),
            time.time(),
        )

    def _log_end(self, partition: int) -> int:
        """The partition's current end offset, asked of the broker (not the fetch cache)."""
        _low, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=5, cached=False
        )
        return high

    def _export_gauges(self, partition: int, state: PartitionState) -> None:
        label = str(partition)
        if state.watermark is not None:
            WATERMARK_SECONDS.labels(label).set(state.watermark)
        _low, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), cached=True
        )
        if high >= 0:
            CONSUMER_LAG.labels(label).set(max(high - (state.fence + 1), 0))

    def _shutdown(self) -> None:
        """Finish cleanly: commit, hand the emitter lease back, leave the group at once."""
        self.health.ready = False
        try:
            offsets = [
                TopicPartition(self.topic, partition, cursor.fence + 1)
                for partition, cursor in self.cursors.items()
                if cursor.fence >= 0
            ]
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as error:  # committed offsets only serve lag tools
            log.warning("final commit failed", error=str(error))
        if self.emitter is not None:
            self.emitter.release()
        self.consumer.close()
        self.metrics_producer.flush(10)
        self.dead_letters.producer.flush(10)
        log.info("processor stopped", processor_id=self.config.processor_id)


def _cursor(state: PartitionState) -> PartitionCursor:
    return PartitionCursor(state.partition, state.fence, state.watermark, state.sealed_before)


def run(config: Config) -> int:
    stopper = Stopper()
    processor = Processor(config)
    stop_http = serve(config.metrics_port, processor.health) if config.metrics_port else None
    try:
        return processor.run(stopper.event)
    finally:
        if stop_http:
            stop_http()
