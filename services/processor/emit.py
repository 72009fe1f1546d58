"""Step 4, emit: publish each closed window once per revision.

Any replica may run the emitter on its timer (a punctuation); a Redis lease
lets one of them do it at a time. Publishing follows a write-ahead protocol, so
a crash at any point publishes a revision at most twice, with the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from services.common.errors import PublishError
from services.common.kafka import produce
from services.common.logging import get_logger
from services.common.observability import PUBLISH_DELAY_SECONDS, WINDOWS_PUBLISHED
from services.common.window_record import iso_utc
from services.common.windowing import Windowing
from services.processor.watermark import StreamTime
from statestore import Emission, StateStore, encode_window_record
from statestore.published import PublishedStore

log = get_logger("processor.emit")

# How long a publish may wait for the broker's acknowledgement before the tick
# fails; the claim stays pending and the next tick publishes it again.
PUBLISH_TIMEOUT_S = 30


class Emitter:
    def __init__(
        self,
        store: StateStore,
        producer: Producer,
        metrics_topic: str,
        windowing: Windowing,
        partitions: int,
        owner: str,
        lease_ms: int,
        published: PublishedStore | None = None,
        confirm_partitions: Callable[[], bool] = lambda: True,
    ):
        self.store = store
        # Keeps each committed revision (and a final window's sketches) for the HTTP API.
        self.published = published
        self.producer = producer
        self.metrics_topic = metrics_topic
        self.windowing = windowing
        self.partitions = range(partitions)
        self.owner = owner
        self.lease_ms = lease_ms
        # Asked before sealing: False when the source topic has gained partitions (the
        # caller grows `partitions`) or its count is unknown, so the seal waits for them.
        self.confirm_partitions = confirm_partitions
        self._previous_tick_s: float | None = None
        self._closed_at_s: dict[int, float] = {}

    def tick(self, stream_time: Callable[[], StreamTime], now_s: float) -> int:
        """Publish what the stream watermark allows; returns records published.

        1. Hold the emitter lease, or leave the work to the replica that does.
        2. Keep the rollup sketches of windows that earlier ticks made final but
           did not retire (their emitter died in between), for the HTTP API.
        3. List windows whose end + grace the stream watermark has passed.
        4. Oldest first, publish each window (`_publish_window`):
           a. a claimed revision still pending (its emitter died) is published again;
           b. once the final watermark passes end + grace + allowed lateness, confirm
              the partition count with the broker (a partition added since the last
              check holds the window until it is read), then seal the window in
              every partition first, so its final record is really final;
           c. merge its state; if it changed since the last revision, or is due to
              be final, claim the next revision, produce it, wait for the broker's
              acknowledgement, and only then commit the revision;
           d. a final window is dropped from the partitions' indexes and its
              per-partition working keys are deleted (sealing keeps them deleted).
        """
        previous_tick_s, self._previous_tick_s = self._previous_tick_s, now_s
        # 1.
        if not self.store.acquire_emitter_lease(self.owner, self.lease_ms):
            self._closed_at_s.clear()
            return 0
        # 2.
        if self.published is not None:
            self.published.keep_due_sketches(self.partitions)
        # 3.
        stream = stream_time()  # only the lease holder asks the broker for log ends
        if stream.watermark_s is None:
            return 0
        closed = self.store.windows_starting_by(
            self.partitions, self.windowing.latest_closed_start(stream.watermark_s)
        )
        if not closed:
            return 0
        for window_start in closed:
            self._closed_at_s.setdefault(window_start, previous_tick_s or now_s)
        emissions = self.store.emissions(closed)
        versions = self.store.window_versions(closed, self.partitions)
        published, known = 0, self.partitions
        for window_start in closed:  # 4.
            if self.partitions != known:
                break  # the topic grew (b.): this tick's stream time lacks the new partitions
            published += self._publish_window(
                window_start, emissions[window_start], versions[window_start], stream
            )
        return published

    def _publish_window(
        self, window_start: int, emission: Emission, version: int, stream: StreamTime
    ) -> int:
        """Step 4 of `tick` for one window (a to d there); returns records published."""
        published = 0
        if emission.pending_record is not None:  # a.
            self._produce(window_start, emission.pending_record)
            self._commit(window_start, emission.pending_revision, emission.pending_final)
            published += 1
            emission = self.store.emission(window_start)
        if emission.final:
            # Its emitter died between the final commit and retiring the window.
            self._retire(window_start)
            return published
        final_watermark_s = stream.final_watermark_s
        final_due = final_watermark_s is not None and final_watermark_s >= (
            self.windowing.seals_at(window_start)
        )
        if version == emission.version and not final_due:
            return published
        if final_due and not self.confirm_partitions():  # b.
            return published
        end = self.windowing.end_of(window_start)
        if final_due and not self.store.seal(self.partitions, end, stream.fences):  # b.
            return published + self._state_lost(window_start, "a partition's fence went back")
        totals = self.store.read_window(window_start, self.partitions)  # c.
        if totals.events < version:  # events only grow, unless Redis lost them meanwhile
            return published + self._state_lost(window_start, "the window has fewer events")
        revision = emission.revision + 1
        record = encode_window_record(  # bounded in size before the claim
            totals,
            self.windowing.size_s,
            revision=revision,
            final=final_due,
            published_at_s=time.time(),
        )
        claim = self.store.claim_revision(
            window_start, emission.revision, record, totals.events, final_due
        )
        if not claim.claimed:
            return published  # another emitter got there first; next tick reads again
        self._produce(window_start, record)
        self._commit(window_start, revision, final_due)
        closed_at_s = self._closed_at_s.pop(window_start, None)
        if revision == 1 and closed_at_s is not None:
            PUBLISH_DELAY_SECONDS.observe(time.time() - closed_at_s)
        return published + 1

    def _state_lost(self, window_start: int, why: str) -> int:
        """Redis lost state during this tick: publish nothing; the processors rebuild it."""
        log.warning(
            "window state lost under the emitter, not publishing",
            window_start=iso_utc(window_start),
            reason=why,
        )
        return 0

    def _produce(self, window_start: int, record: bytes) -> None:
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        produce(
            self.producer,
            self.metrics_topic,
            record,
            key=iso_utc(window_start),
            on_delivery=on_delivery,
        )
        remaining = self.producer.flush(PUBLISH_TIMEOUT_S)
        if remaining or failures:
            raise PublishError(
                f"metrics topic {self.metrics_topic} did not confirm window "
                f"{iso_utc(window_start)}: {failures or 'timeout'}"
            )

    def _commit(self, window_start: int, revision: int, final: bool) -> None:
        if self.published is None:
            self.store.commit_revision(window_start, revision)
        else:
            self.published.commit(window_start, revision)
        WINDOWS_PUBLISHED.labels(str(final).lower()).inc()
        log.info(
            "window published",
            window_start=iso_utc(window_start),
            revision=revision,
            final=final,
        )
        if final:
            self._retire(window_start)

    def _retire(self, window_start: int) -> None:
        """Step 4d of `tick`, the one place a final window's state leaves Redis.

        Sealing already refuses every later batch for it, so nothing writes its
        keys again. What readers keep of it (one merged copy of its sketches and its
        summary, listed as due by the final commit) is copied first; then the
        per-partition working keys are deleted.
        """
        if self.published is not None:
            self.published.keep_due_sketches(self.partitions)
        self.store.forget_window(self.partitions, window_start)

    def release(self) -> None:
        self.store.release_emitter_lease(self.owner)
