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
import gc
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from services.common.config import Config, redis_options
from services.common.errors import PublishError
from services.common.kafka import make_consumer, make_producer, partition_count, wait_for_broker
from services.common.logging import get_logger
from services.common.observability import (
    ASSIGNED_PARTITIONS,
    CONSUMER_LAG,
    FENCE_RESYNCS,
    REBALANCES,
    RECORDS_CONSUMED,
    Health,
    serve,
)
from services.common.shutdown import Stopper
from services.common.windowing import Windowing
from services.processor.apply import BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetterError, DeadLetters
from services.processor.decode import PartitionBatch, decode
from services.processor.emit import Emitter
from services.processor.outage import Outage, redis_fault_hooks
from services.processor.settings import (
    DEAD_LETTER_RETRY_S,
    EMITTER_LEASE_MIN_MS,
    EMITTER_LEASE_PUNCTUATIONS,
    FETCH_SETTINGS,
    GC_THRESHOLDS,
    SETTINGS,
    SHUTDOWN_FLUSH_TIMEOUT_S,
    assign,
    group_settings,
)
from services.processor.source import SourceTopic
from services.processor.watermark import stream_time
from statestore import ApplyStatus, PartitionState, StateStore
from statestore.published import PublishedStore
from statestore.retry import RedisRetry
from statestore.server import require_noeviction

log = get_logger("processor")

# The CLI reads SETTINGS here; they live in services.processor.settings.
__all__ = ["FETCH_SETTINGS", "SETTINGS", "Processor", "run"]


class Processor:
    def __init__(self, config: Config):
        self.config = config
        self.topic = config.events_topic
        self.windowing = Windowing(
            config.window_seconds, config.grace_seconds, config.allowed_lateness_seconds
        )
        self.health = Health()
        self.store = StateStore.from_url(
            config.redis_url,
            config.state_namespace,
            self.topic,
            ttl_s=config.state_ttl_seconds,
            retry=RedisRetry(config.redis_retry_seconds, redis_fault_hooks(self.health)),
            **redis_options(config),
        )
        self.consumer = make_consumer(
            config,
            config.consumer_group,
            **{
                "enable.partition.eof": True,
                **group_settings(config),
                **FETCH_SETTINGS,
                "client.id": config.processor_id,
            },
        )
        self.dead_letters = DeadLetters(make_producer(config), config.dlq_topic)
        self.applier = BatchApplier(
            self.store,
            self.dead_letters,
            self.windowing,
            config.processor_id,
            config.normalize_page_urls,
        )
        self.metrics_producer = make_producer(config, **{"linger.ms": 0})
        self.cursors: dict[int, PartitionCursor] = {}
        # One outage per path, so one path answering again cannot hide another still failing.
        budget_s = config.kafka_retry_seconds
        self.dead_letter_outage = Outage("kafka-dead-letters", budget_s, self.health)
        self.publish_outage = Outage("kafka-metrics", budget_s, self.health)
        self.metadata_outage = Outage("kafka-metadata", budget_s, self.health)
        self.source = SourceTopic(self.consumer, self.topic, self.metadata_outage)
        self.held_back: dict[int, float] = {}  # partition -> when to read it again
        # Partitions sought back to their fence since this poll began: the poll's records
        # of them were fetched before the seek, so they are dropped, never applied.
        self.sought: set[int] = set()
        self.partitions = 0
        self.emitter: Emitter | None = None

    # -- partition ownership ----------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Seek every newly owned partition to its fence + 1, read from Redis."""
        self._grow_to(max(tp.partition for tp in partitions) + 1 if partitions else 0)
        states = self.store.partition_states(tp.partition for tp in partitions)
        for tp in partitions:
            state = states[tp.partition]
            self.cursors[tp.partition] = _cursor(state)
            tp.offset = self._start_offset(state.fence)
        assign(consumer, partitions, self.config.group_protocol)
        # librdkafka keeps a partition paused (held back) across a revoke; start it afresh.
        consumer.resume(partitions)
        for tp in partitions:
            self.held_back.pop(tp.partition, None)
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
        # Before the next owner reads the fences: scripts still in flight land now.
        self._finish_applies()
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
        FENCE_RESYNCS.labels(str(partition)).inc()
        self.consumer.seek(TopicPartition(self.topic, partition, self._start_offset(state.fence)))
        self.sought.add(partition)
        log.info("partition re-synced", topic=self.topic, partition=partition, fence=state.fence)

    # -- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        metadata = wait_for_broker(self.consumer)
        self.partitions = partition_count(metadata, self.topic)
        for topic in (self.config.metrics_topic, self.config.dlq_topic):
            partition_count(metadata, topic)  # raises TopicNotFound naming it
        # Inside the retry: a replica (re)started while Redis is away waits for it, not exit.
        policy = self.store.retry.call(
            lambda: require_noeviction(self.store.redis, self.config.redis_allow_eviction),
            "eviction policy check",
        )
        log.info("redis eviction policy", maxmemory_policy=policy)
        self.applier.hold_registers(self.config.held_registers)
        self.store.record_topology(self.partitions, self.windowing.size_s)
        self.emitter = Emitter(
            self.store,
            self.metrics_producer,
            self.config.metrics_topic,
            self.windowing,
            self.partitions,
            owner=self.config.processor_id,
            lease_ms=max(
                EMITTER_LEASE_MIN_MS, EMITTER_LEASE_PUNCTUATIONS * self.config.emit_interval_ms
            ),
            published=PublishedStore(
                self.store, retention_s=int(self.config.rollup_retention_days * 86400)
            ),
            # Before a seal: a partition added since the last refresh must hold the window.
            confirm_partitions=lambda: self._grow_to(self.source.partitions_now(force=True)),
        )
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        gc.set_threshold(*GC_THRESHOLDS)
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
                if self.held_back:
                    self._resume_held_back()
                self.sought.clear()
                self._process(self.consumer.consume(max_records, max_wait))
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + interval
                    self._punctuate()
        finally:
            self._shutdown()
        return 0

    def _process(self, messages: list) -> None:
        """decode -> fold -> apply the poll's partition batches. The previous poll's scripts
        ran in Redis while this poll was consumed and decoded: they are settled first."""
        decoded = decode(messages, self.config.max_future_skew_seconds)
        for error in decoded.errors:
            log.error("consume error", topic=self.topic, error=str(error))
        self._finish_applies()
        owned, sought = self.cursors, self.sought  # revoked or sought back meanwhile: dropped
        work = [
            (b, owned[b.partition])
            for b in decoded.batches
            if b.partition in owned and b.partition not in sought
        ]
        for batch, cursor in work:
            cursor.caught_up_offset = None
            RECORDS_CONSUMED.labels(str(batch.partition)).inc(len(batch.messages))
        unconfirmed = self.applier.start_all(work)
        for batch, _ in work:
            if batch.partition in unconfirmed:
                self._hold_back(batch, unconfirmed[batch.partition])
            else:
                self.dead_letter_outage.succeeded()
        # After the records: an end-of-partition event follows the partition's last record.
        # A held-back partition is not caught up: its batch still waits to be applied.
        for partition, end_offset in decoded.reached_end.items():
            cursor = self.cursors.get(partition)
            if cursor is not None and partition not in self.held_back and partition not in sought:
                cursor.caught_up_offset = end_offset

    def _finish_applies(self) -> None:
        """Settle the batches whose scripts are in flight: commit the applied ones (for lag
        tools), re-sync the owned ones refused."""
        applied = []
        for batch, status in self.applier.finish_all():
            if status is ApplyStatus.APPLIED:
                applied.append(TopicPartition(self.topic, batch.partition, batch.last_offset + 1))
            elif batch.partition in self.cursors:
                self._resync(batch.partition)
        if applied:
            self.consumer.commit(offsets=applied, asynchronous=True)

    def _hold_back(self, batch: PartitionBatch, error: DeadLetterError) -> None:
        """Dead letters unconfirmed: keep the fence, pause, read the batch again later.

        Raises BrokerUnavailable once the dead-letter topic has refused for
        KAFKA_RETRY_SECONDS without a break.
        """
        self.dead_letter_outage.failed(
            "dead-letter confirm",
            error,
            topic=batch.topic,
            partition=batch.partition,
            first_offset=batch.first_offset,
            last_offset=batch.last_offset,
            retry_in_s=DEAD_LETTER_RETRY_S,
        )
        # Seek first: the apply script takes any batch past the fence, so the records
        # after this batch must not be fetched before it is applied.
        self._resync(batch.partition)
        self.consumer.pause([TopicPartition(self.topic, batch.partition)])
        self.held_back[batch.partition] = time.monotonic() + DEAD_LETTER_RETRY_S

    def _resume_held_back(self) -> None:
        now = time.monotonic()
        due = [partition for partition, at in self.held_back.items() if at <= now]
        for partition in due:
            del self.held_back[partition]
        owned = [TopicPartition(self.topic, p) for p in due if p in self.cursors]
        if owned:
            self.consumer.resume(owned)

    def _punctuate(self) -> None:
        """Heartbeat caught-up partitions, catch fences that moved (a wiped Redis), emit."""
        self._finish_applies()  # a script in flight would look like a fence moved elsewhere
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
            self.source.export_gauges(state)
        try:
            self.emitter.tick(
                lambda: stream_time(
                    states, now_ms, self.config.idle_partition_seconds * 1000, self.source.log_end
                ),
                time.time(),
            )
        except PublishError as error:
            # The claimed revision stays pending in Redis; the next tick publishes it.
            self.publish_outage.failed("publish window", error, topic=self.config.metrics_topic)
        else:
            self.publish_outage.succeeded()
        self._grow_to(self.source.partitions_now())

    def _grow_to(self, partitions: int | None) -> bool:
        """Partitions are only ever added to a topic; merge every window over all of them.
        True when the count is known (not None) and none were added."""
        if partitions is None or partitions <= self.partitions:
            return partitions is not None
        log.warning(
            "events topic gained partitions",
            topic=self.topic,
            partitions_before=self.partitions,
            partitions=partitions,
        )
        self.partitions = partitions
        if self.emitter is not None:
            self.emitter.partitions = range(partitions)
        self.store.record_topology(partitions, self.windowing.size_s)
        return False

    def _shutdown(self) -> None:
        """Finish cleanly: commit, hand the emitter lease back, leave the group at once."""
        self.health.ready = False
        try:
            self._finish_applies()
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
        self.applier.close()
        self.consumer.close()
        self.metrics_producer.flush(SHUTDOWN_FLUSH_TIMEOUT_S)
        self.dead_letters.producer.flush(SHUTDOWN_FLUSH_TIMEOUT_S)
        log.info("processor stopped", processor_id=self.config.processor_id)


def _cursor(state: PartitionState) -> PartitionCursor:
    return PartitionCursor(state.partition, state.fence, state.watermark_s, state.sealed_before)


def run(config: Config) -> int:
    stopper = Stopper()
    processor = Processor(config)
    stop_http = serve(config.metrics_port, processor.health) if config.metrics_port else None
    try:
        return processor.run(stopper.event)
    finally:
        if stop_http:
            stop_http()
