"""Step 3, apply: one partition batch into Redis, exactly once.

Guarantee: a batch's records change the window state once or not at all. The
Lua script checks the fence (the last offset whose effect is in Redis) and
writes the deltas, the new fence and the watermark in one atomic step; dead
letters are confirmed by Kafka before the fence can move past them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from services.common.logging import get_logger
from services.common.observability import APPLY_SECONDS, BATCHES, EVENTS_APPLIED, LATE_EVENTS
from services.common.windowing import Windowing
from services.processor.dead_letters import DeadLetters
from services.processor.decode import PartitionBatch
from services.processor.fold import Folded, fold
from statestore import ApplyResult, ApplyStatus, StateStore

log = get_logger("processor.apply")

TOO_LATE = "too_late"


@dataclass
class PartitionCursor:
    """Where a partition stands, as this replica last read or wrote it in Redis."""

    partition: int
    fence: int
    watermark_s: float | None
    sealed_before: int
    caught_up_offset: int | None = None  # log end at the last end-of-partition event


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
        self.normalize_page_urls = normalize_page_urls
        self.owner = owner
        self.dead_letters = dead_letters
        self.windowing = windowing

    def apply(self, batch: PartitionBatch, cursor: PartitionCursor) -> ApplyStatus:
        """Apply `batch` on top of `cursor`; returns APPLIED or STALE.

        1. Fold the events with the partition's watermark and seal.
        2. Send rejects and too-late events to the dead-letter topic and wait for
           Kafka to confirm them (only when there are any).
        3. Run the apply script with the fence this replica last saw.
        4. APPLIED: advance the cursor. SEALED: a window was finalized meanwhile;
           take the new seal and go back to 1, so its events become too late.
           STALE: another writer moved the fence; the caller re-reads and seeks.
        """
        dead_sent: set[int] = set()
        while True:
            folded = fold(
                batch.events,
                cursor.watermark_s,
                cursor.sealed_before,
                self.windowing,
                self.normalize_page_urls,
            )
            dead_letters = Counter(reject.reason for reject in batch.rejects)
            dead_letters[TOO_LATE] += len(folded.too_late)
            self._send_dead_letters(batch, folded.too_late, dead_sent)
            started = time.perf_counter()
            result = self.store.apply_batch(
                batch.partition,
                cursor.fence,
                batch.first_offset,
                batch.last_offset,
                folded.deltas,
                folded.watermark_s,
                +dead_letters,
                now_ms=int(time.time() * 1000),
                owner=self.owner,
            )
            APPLY_SECONDS.observe(time.perf_counter() - started)
            BATCHES.labels(result.status.name.lower()).inc()
            if result.status is ApplyStatus.SEALED:
                log.info(
                    "windows sealed under this batch, refolding",
                    topic=batch.topic,
                    partition=batch.partition,
                    first_offset=batch.first_offset,
                    sealed_before=result.sealed_before,
                )
                cursor.sealed_before = result.sealed_before
                continue
            self._settle(batch, cursor, folded, result)
            return result.status

    def _settle(
        self, batch: PartitionBatch, cursor: PartitionCursor, folded: Folded, result: ApplyResult
    ) -> None:
        """Step 4 of `apply` for APPLIED and STALE."""
        if result.status is ApplyStatus.APPLIED:
            cursor.fence = result.fence
            cursor.watermark_s = folded.watermark_s
            cursor.sealed_before = result.sealed_before
            applied = len(batch.events) - len(folded.too_late)
            EVENTS_APPLIED.labels(str(batch.partition)).inc(applied)
            LATE_EVENTS.inc(folded.late)
            return
        log.warning(
            "batch refused: fence moved",
            topic=batch.topic,
            partition=batch.partition,
            first_offset=batch.first_offset,
            last_offset=batch.last_offset,
            expected_fence=cursor.fence,
            stored_fence=result.fence,
        )

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
