"""Stream time: the event-time watermark of the whole source topic.

A window may close only when every partition has moved past its end + grace.
An idle partition (its owner has read to the end and nothing arrived for a
while) must not hold windows open forever, so idle partitions are left out;
when every partition is idle, wall-clock time drives the watermark so the last
windows of a burst or a replay close too. A partition nobody has reported on
(no owner yet, or its owner died) is not idle: windows wait for its takeover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from statestore import PartitionState


@dataclass(frozen=True)
class StreamTime:
    watermark: float | None  # None: some active partition has no watermark yet
    idle: frozenset[int]


def is_idle(
    state: PartitionState, now_ms: int, idle_after_ms: int, heartbeat_stale_ms: int
) -> bool:
    caught_up = state.caught_up_at_ms
    if caught_up is None or now_ms - caught_up > heartbeat_stale_ms:
        return False  # no live owner says it has read to the end
    applied = state.applied_at_ms
    if applied is None:
        return True
    return caught_up >= applied and now_ms - applied >= idle_after_ms


def stream_time(
    states: Mapping[int, PartitionState],
    now_ms: int,
    idle_after_ms: int,
    heartbeat_stale_ms: int,
) -> StreamTime:
    idle = frozenset(
        partition
        for partition, state in states.items()
        if is_idle(state, now_ms, idle_after_ms, heartbeat_stale_ms)
    )
    active = [state for partition, state in states.items() if partition not in idle]
    if active:
        if any(state.watermark is None for state in active):
            return StreamTime(None, idle)
        return StreamTime(min(state.watermark for state in active), idle)
    seen = [state.watermark for state in states.values() if state.watermark is not None]
    return StreamTime(max([now_ms / 1000, *seen]), idle)
