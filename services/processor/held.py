"""HyperLogLog members Redis already holds, so a batch does not send them again.

Redis' cost per event is per HLL member it is sent: parsing it out of the
script's argument, hashing it, and writing it to the AOF. Adding a member a
HyperLogLog already holds changes nothing, and in real traffic a user or session
sends many events per window, each in a later batch than the first. So a replica
remembers, per partition and window, the members of the batches Redis applied,
and leaves those members out of the next batches of the same window.

Why skipping is exact, not an estimate: a member is remembered only after the
apply script that added it returned APPLIED, and the fence is written by that
same script, so Redis holds that member for as long as it holds that fence. The
memory belongs to one PartitionCursor: a resync (the fence moved: a zombie
batch, a retried script, a Redis that lost writes), a revoke or a reassignment
makes a new cursor and so starts from nothing. A window this replica has not
applied to for half the state TTL is forgotten, since its keys may expire.
Sealed windows are forgotten too; Redis refuses their batches whatever they hold.

Memory is bounded by `capacity` members over every partition (HELD_MEMBERS_MAX,
about 110 bytes each; 0, the default, turns this off). When full, older windows
make room for newer ones; a member that does not fit is simply sent every time,
as without this module. It trades replica CPU and memory for Redis CPU: README
"Performance" has the measurements.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from statestore import WindowDelta
from statestore.metrics import HLLS

_HLL_NAMES = tuple(metric.name for metric in HLLS)


@dataclass
class _Window:
    # HLL metric -> its members, as the keys of a dict: a dict holding only strings is
    # left out of Python's cyclic GC, where a set of 100,000s of members would be walked
    # on every full collection.
    members: dict[str, dict[str, None]] = field(default_factory=dict)
    applied_at: float = 0.0  # monotonic time of the last batch applied to it
    size: int = 0


@dataclass
class _PartitionMemory:
    cursor_generation: int
    windows: dict[int, _Window] = field(default_factory=dict)  # window start -> held


class HeldMembers:
    """What one replica knows Redis holds, per partition, window and HLL metric."""

    def __init__(self, capacity: int, ttl_s: float, clock=time.monotonic):
        self.capacity = capacity
        self.forget_after_s = ttl_s / 2
        self.clock = clock
        self.size = 0
        self._partitions: dict[int, _PartitionMemory] = {}

    def leave_out(self, partition: int, generation: int, deltas: list[WindowDelta]) -> None:
        """Take the members Redis holds out of `deltas`' HLL sets (in place)."""
        if not self.capacity:
            return
        memory = self._memory(partition, generation)
        if not memory.windows:
            return
        now = self.clock()
        for delta in deltas:
            window = memory.windows.get(delta.window_start)
            if window is None:
                continue
            if now - window.applied_at > self.forget_after_s:
                self._forget(memory, delta.window_start)
                continue
            for name, held in window.members.items():
                members = getattr(delta, name)
                if members:
                    setattr(delta, name, _as_set(members).difference(held))

    def remember(
        self, partition: int, generation: int, deltas: list[WindowDelta], sealed_before: int
    ) -> None:
        """`deltas` were applied: Redis holds their HLL members now."""
        if not self.capacity:
            return  # off: no window bookkeeping on the hot path
        memory = self._memory(partition, generation)
        for start in [start for start in memory.windows if start < sealed_before]:
            self._forget(memory, start)
        now = self.clock()
        for delta in deltas:
            window = memory.windows.get(delta.window_start)
            if window is None:
                window = memory.windows[delta.window_start] = _Window()
            window.applied_at = now
            for name in _HLL_NAMES:
                members = getattr(delta, name)
                if members and self._make_room(len(members), delta.window_start):
                    held = window.members.setdefault(name, {})
                    before = len(held)
                    held.update(dict.fromkeys(members))
                    window.size += len(held) - before
                    self.size += len(held) - before

    def _memory(self, partition: int, generation: int) -> _PartitionMemory:
        memory = self._partitions.get(partition)
        if memory is None or memory.cursor_generation != generation:
            if memory is not None:
                self.size -= sum(window.size for window in memory.windows.values())
            memory = self._partitions[partition] = _PartitionMemory(generation)
        return memory

    def _make_room(self, needed: int, window_start: int) -> bool:
        """Forget windows older than `window_start`, oldest first, until `needed` fit."""
        if self.size + needed <= self.capacity:
            return True
        older = sorted(
            (
                (start, memory)
                for memory in self._partitions.values()
                for start in memory.windows
                if start < window_start
            ),
            key=lambda pair: pair[0],
        )
        for start, memory in older:
            self._forget(memory, start)
            if self.size + needed <= self.capacity:
                return True
        return False

    def _forget(self, memory: _PartitionMemory, window_start: int) -> None:
        window = memory.windows.pop(window_start)
        self.size -= window.size


def _as_set(members) -> set[str]:
    return members if isinstance(members, set) else set(members)


_generations = itertools.count()


def next_generation() -> int:
    """A number no other PartitionCursor of this process has."""
    return next(_generations)
