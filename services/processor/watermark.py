"""Stream time: the event-time watermarks of the whole source topic.

A window may close only when every partition has moved past its end + grace.
An idle partition must not hold windows open forever, so idle partitions are
left out. Idle means: its owner read it to the end, the log has not grown since
(checked against the partition's current end offset, so a stale report cannot
hide records waiting in Kafka), and nothing was applied for a while.

Two watermarks come out:
- `watermark_s` closes windows (publishes them). When every partition is idle,
  wall-clock time drives it, so the last windows of a burst or a replay close.
- `final_watermark_s` seals windows (final: later events go to the dead-letter
  topic). It only follows event time: when every partition is idle, it
  advances from the newest event time by the time the stream has been quiet.
  A replay of yesterday's data that pauses therefore has its windows published
  early but not sealed, and amends them when it resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from statestore import PartitionState


@dataclass(frozen=True)
class StreamTime:
    watermark_s: float | None  # None: some active partition has no watermark yet
    final_watermark_s: float | None
    idle: frozenset[int]
    # The fences these watermarks were read with: sealing refuses a partition whose
    # fence has since gone down (Redis lost its state), see statestore seal_window.lua.
    fences: Mapping[int, int] = field(default_factory=dict)


def is_idle(
    state: PartitionState, now_ms: int, idle_after_ms: int, end_offset: Callable[[int], int]
) -> bool:
    if state.caught_up_offset is None:
        return False  # no owner has reported reading it to the end
    if state.applied_at_ms is not None and now_ms - state.applied_at_ms < idle_after_ms:
        return False
    return end_offset(state.partition) <= state.caught_up_offset


def stream_time(
    states: Mapping[int, PartitionState],
    now_ms: int,
    idle_after_ms: int,
    end_offset: Callable[[int], int],
) -> StreamTime:
    """`end_offset(partition)` is the partition's current log end, asked only when needed."""
    idle = frozenset(
        partition
        for partition, state in states.items()
        if is_idle(state, now_ms, idle_after_ms, end_offset)
    )
    fences = {partition: state.fence for partition, state in states.items()}
    active = [state for partition, state in states.items() if partition not in idle]
    if active:
        if any(state.watermark_s is None for state in active):
            return StreamTime(None, None, idle, fences)
        slowest = min(state.watermark_s for state in active)
        return StreamTime(slowest, slowest, idle, fences)
    seen = [state.watermark_s for state in states.values() if state.watermark_s is not None]
    if not seen:
        return StreamTime(now_ms / 1000, None, idle, fences)
    applied = [state.applied_at_ms for state in states.values() if state.applied_at_ms]
    quiet_s = (now_ms - max(applied)) / 1000 if applied else 0.0
    return StreamTime(max(now_ms / 1000, *seen), max(seen) + max(quiet_s, 0.0), idle, fences)
