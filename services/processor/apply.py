"""Step 3, apply: one partition batch into Redis, exactly once.

Guarantee: a batch's records change the window state once or not at all. The
Lua script checks the fence (the last offset whose effect is in Redis) and
writes the deltas, the new fence and the watermark in one atomic step; dead
letters are confirmed by Kafka before the fence can move past them.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from services.common.logging import get_logger
from services.common.observability import APPLY_SECONDS, BATCHES, EVENTS_APPLIED, LATE_EVENTS
from services.common.windowing import Windowing
from services.processor.dead_letters import DeadLetterError, DeadLetters
from services.processor.decode import PartitionBatch
from services.processor.fold import Folded, fold
from services.processor.held import HeldRegisters, held_registers, next_generation
from statestore import ApplyResult, ApplyStatus, StateStore

log = get_logger("processor.apply")

TOO_LATE = "too_late"


@dataclass(frozen=True)
class _Prepared:
    """A folded batch ready for the apply script, and the fence it expects."""

    folded: Folded
    dead_letters: Counter
    dead_sent: set[int]  # offsets already sent to the dead-letter topic
    expected_fence: int


@dataclass
class PartitionCursor:
    """Where a partition stands, as this replica last read or wrote it in Redis."""

    partition: int
    fence: int
    watermark_s: float | None
    sealed_before: int
    caught_up_offset: int | None = None  # log end at the last end-of-partition event
    # Which cursor this is: registers remembered as held in Redis belong to one cursor
    # (services.processor.held), and a resync or reassignment makes a new one.
    generation: int = field(default_factory=next_generation)


class BatchApplier:
    def __init__(
        self,
        store: StateStore,
        dead_letters: DeadLetters,
        windowing: Windowing,
        owner: str,
        normalize_page_urls: bool = True,
    ):
        self.store = store
        self.held = HeldRegisters(False, store.ttl_s)
        self.normalize_page_urls = normalize_page_urls
        self.owner = owner
        self.dead_letters = dead_letters
        self.windowing = windowing
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply-sender")
        self._in_flight: list[tuple[PartitionBatch, PartitionCursor, _Prepared, Future]] = []

    def hold_registers(self, wanted: bool) -> None:
        """Leave out members that raise no register Redis holds, if `wanted` and this
        Redis agrees on where members go (services.processor.held). It asks Redis, so
        the processor calls it at start-up, where Redis calls wait out an outage."""
        self.held = held_registers(self.store, wanted)

    def apply(
        self, batch: PartitionBatch, cursor: PartitionCursor, dead_sent: set[int] | None = None
    ) -> ApplyStatus:
        """Apply `batch` on top of `cursor`; returns APPLIED or STALE.

        1. Fold the events with the partition's watermark and seal; leave out the HLL
           members that raise no register Redis holds (services.processor.held).
        2. Send rejects and too-late events to the dead-letter topic and wait for
           Kafka to confirm them (only when there are any).
        3. Run the apply script with the fence this replica last saw.
        4. APPLIED: advance the cursor. SEALED: a window was finalized meanwhile;
           take the new seal and go back to 1, so its events become too late.
           STALE: another writer moved the fence; the caller re-reads and seeks.
        """
        dead_sent = set() if dead_sent is None else dead_sent
        while True:
            prepared = self._prepare(batch, cursor, dead_sent)
            status = self._settle(batch, cursor, prepared, self._run_script(batch, prepared))
            if status is not None:
                return status

    def start_all(
        self, work: list[tuple[PartitionBatch, PartitionCursor]]
    ) -> dict[int, DeadLetterError]:
        """Fold each of one poll's batches and hand its script to the sender thread, so
        the next partition's batch is folded while Redis runs the one before. Returns the
        batches left unapplied because their dead letters went unconfirmed, by partition.

        A poll holds at most one batch per partition, and partitions share nothing (each
        has its own fence, watermark and seal), so their scripts may run in any order;
        only one script is in flight at a time, on the sender thread, which waits on the
        socket without the GIL. The scripts may still run when this returns: finish_all
        settles them, and must run before a partition's next batch is started.
        """
        unconfirmed: dict[int, DeadLetterError] = {}
        for batch, cursor in work:
            try:
                prepared = self._prepare(batch, cursor, set())
            except DeadLetterError as error:
                unconfirmed[batch.partition] = error
                continue
            future = self._sender.submit(self._run_script, batch, prepared)
            self._in_flight.append((batch, cursor, prepared, future))
        return unconfirmed

    def finish_all(self) -> list[tuple[PartitionBatch, ApplyStatus]]:
        """Wait for the scripts start_all handed over and settle each batch, in order."""
        in_flight, self._in_flight = self._in_flight, []
        settled = []
        try:
            while in_flight:
                batch, cursor, prepared, future = in_flight[0]
                status = self._settle(batch, cursor, prepared, future.result())
                if status is None:  # SEALED (rare): refold it alone, dead letters not resent
                    status = self.apply(batch, cursor, prepared.dead_sent)
                settled.append((batch, status))
                in_flight.pop(0)
        finally:
            for _, _, _, future in in_flight:
                future.cancel()  # after an error: no script runs for a batch left unsettled
        return settled

    def close(self) -> None:
        self._sender.shutdown(wait=True)

    def _prepare(
        self, batch: PartitionBatch, cursor: PartitionCursor, dead_sent: set[int]
    ) -> _Prepared:
        folded = fold(
            batch.events,
            cursor.watermark_s,
            cursor.sealed_before,
            self.windowing,
            self.normalize_page_urls,
            batch.event_time_bounds,
        )
        self.held.leave_out(cursor.partition, cursor.generation, folded.deltas)
        dead_letters = Counter(reject.reason for reject in batch.rejects)
        dead_letters[TOO_LATE] += len(folded.too_late)
        self._send_dead_letters(batch, folded.too_late, dead_sent)
        return _Prepared(folded, +dead_letters, dead_sent, cursor.fence)

    def _run_script(self, batch: PartitionBatch, prepared: _Prepared) -> ApplyResult:
        started = time.perf_counter()
        result = self.store.apply_batch(
            batch.partition,
            prepared.expected_fence,
            batch.first_offset,
            batch.last_offset,
            prepared.folded.deltas,
            prepared.folded.watermark_s,
            prepared.dead_letters,
            now_ms=int(time.time() * 1000),
            owner=self.owner,
        )
        APPLY_SECONDS.observe(time.perf_counter() - started)
        BATCHES.labels(result.status.name.lower()).inc()
        return result

    def _settle(
        self,
        batch: PartitionBatch,
        cursor: PartitionCursor,
        prepared: _Prepared,
        result: ApplyResult,
    ) -> ApplyStatus | None:
        """Take the script's result into the cursor; None when the batch must be refolded."""
        folded = prepared.folded
        if result.status is ApplyStatus.SEALED:
            log.info(
                "windows sealed under this batch, refolding",
                topic=batch.topic,
                partition=batch.partition,
                first_offset=batch.first_offset,
                sealed_before=result.sealed_before,
            )
            cursor.sealed_before = result.sealed_before
            return None
        if result.status is ApplyStatus.APPLIED:
            self.held.remember(
                cursor.partition, cursor.generation, folded.deltas, result.sealed_before
            )
            cursor.fence = result.fence
            cursor.watermark_s = folded.watermark_s
            cursor.sealed_before = result.sealed_before
            applied = len(batch.events) - len(folded.too_late)
            EVENTS_APPLIED.labels(str(batch.partition)).inc(applied)
            LATE_EVENTS.inc(folded.late)
        else:
            log.warning(
                "batch refused: fence moved",
                topic=batch.topic,
                partition=batch.partition,
                first_offset=batch.first_offset,
                last_offset=batch.last_offset,
                expected_fence=prepared.expected_fence,
                stored_fence=result.fence,
            )
        return result.status

    def _send_dead_letters(
        self, batch: PartitionBatch, too_late: list[int], already_sent: set[int]
    ) -> None:
        pending = False
        for reject in batch.rejects:
            offset = reject.message.offset()
            if offset not in already_sent:
                already_sent.add(offset)
                self.dead_letters.send(reject.message, reject.reason, reject.detail)
                log.warning(
                    "record rejected",
                    reason=reject.reason,
                    detail=reject.detail,
                    topic=batch.topic,
                    partition=batch.partition,
                    offset=offset,
                )
                pending = True
        for index in too_late:
            message = batch.event_messages[index]
            offset = message.offset()
            if offset not in already_sent:
                already_sent.add(offset)
                event = batch.events[index]
                self.dead_letters.send(
                    message,
                    TOO_LATE,
                    f"event time {event.timestamp.isoformat()} is behind the partition "
                    f"watermark by more than the allowed lateness, or its window is final",
                )
                pending = True
        if pending:
            self.dead_letters.confirm()
