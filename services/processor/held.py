"""HyperLogLog registers Redis already holds, so a batch sends only members that raise one.

Redis' cost per event is per HLL member it is sent: parsing it out of the
script's argument, hashing it, and writing it to the AOF. PFADD of a member
changes a HyperLogLog only if the member's rank is above its register's value
(statestore.hll computes both as Redis does). So a replica keeps, per partition,
window and HLL metric, the registers of the members of the batches Redis applied,
and sends only members that raise them. In steady traffic that is few: a window's
registers fill with its first tens of thousands of members, after which a new
member rarely raises one, and a returning user or session never does. Within a
batch, members that raise nothing over the members before them are left out too.

Why leaving out is exact, not an estimate: registers are raised only after the
apply script that added their members returned APPLIED, and that same script
wrote the fence, so Redis holds at least those registers for as long as it holds
that fence; Redis ends with exactly the registers it would have had with every
member sent. The memory belongs to one PartitionCursor: a resync (the fence
moved: a zombie batch, a retried script, a Redis that lost writes), a revoke or
a reassignment makes a new cursor and so starts from nothing. A window this
replica has not applied to for half the state TTL is forgotten, since its keys
may expire. Sealed windows are forgotten too; Redis refuses their batches.

Memory: 16 KiB per partition, window and HLL metric, for at most
WINDOWS_PER_PARTITION windows per partition (the newest; older ones are
forgotten, which only means their members are sent). Off (HELD_REGISTERS=false,
or without the C extension, or with a server that hashes otherwise) every member
is sent, as before. README "Performance" has the measurements.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from services.common.logging import get_logger
from statestore import StateStore, WindowDelta, hll
from statestore.metrics import HLLS

log = get_logger("processor.held")

_HLL_NAMES = tuple(metric.name for metric in HLLS)
# On time, late and a replay's windows at once stay well under this; 16 windows of two
# HLL metrics are 512 KiB per partition.
WINDOWS_PER_PARTITION = 16


@dataclass
class _Window:
    registers: dict[str, bytearray] = field(default_factory=dict)  # HLL metric -> registers
    applied_at: float = 0.0  # monotonic time of the last batch applied to it


@dataclass
class _PartitionMemory:
    cursor_generation: int
    windows: dict[int, _Window] = field(default_factory=dict)  # window start -> held


class HeldRegisters:
    """What one replica knows Redis holds, per partition, window and HLL metric."""

    def __init__(
        self,
        enabled: bool,
        ttl_s: float,
        clock=time.monotonic,
        windows_per_partition: int = WINDOWS_PER_PARTITION,
    ):
        self.enabled = enabled and hll.available()
        self.forget_after_s = ttl_s / 2
        self.clock = clock
        self.windows_per_partition = windows_per_partition
        self._partitions: dict[int, _PartitionMemory] = {}

    def leave_out(self, partition: int, generation: int, deltas: list[WindowDelta]) -> None:
        """Replace `deltas`' HLL members by those that raise a register (in place)."""
        if not self.enabled:
            return
        memory = self._memory(partition, generation)
        now = self.clock()
        for delta in deltas:
            window = memory.windows.get(delta.window_start)
            if window is not None and now - window.applied_at > self.forget_after_s:
                del memory.windows[delta.window_start]
                window = None
            for name in _HLL_NAMES:
                members = getattr(delta, name)
                if members:
                    known = window.registers.get(name) if window is not None else None
                    setattr(delta, name, hll.novel(members, known))

    def remember(
        self, partition: int, generation: int, deltas: list[WindowDelta], sealed_before: int
    ) -> None:
        """`deltas` were applied: Redis holds their members' registers now."""
        if not self.enabled:
            return
        memory = self._memory(partition, generation)
        for start in [start for start in memory.windows if start < sealed_before]:
            del memory.windows[start]
        now = self.clock()
        for delta in deltas:
            window = memory.windows.get(delta.window_start)
            if window is None:
                window = self._make_window(memory, delta.window_start)
                if window is None:
                    continue
            window.applied_at = now
            for name in _HLL_NAMES:
                members = getattr(delta, name)
                if members:
                    registers = window.registers.get(name)
                    if registers is None:
                        registers = window.registers[name] = hll.empty_registers()
                    hll.raise_registers(registers, members)

    def held_windows(self, partition: int) -> list[int]:
        memory = self._partitions.get(partition)
        return sorted(memory.windows) if memory else []

    def _memory(self, partition: int, generation: int) -> _PartitionMemory:
        memory = self._partitions.get(partition)
        if memory is None or memory.cursor_generation != generation:
            memory = self._partitions[partition] = _PartitionMemory(generation)
        return memory

    def _make_window(self, memory: _PartitionMemory, window_start: int) -> _Window | None:
        """A new window's memory, forgetting the oldest if full; None if it is the oldest."""
        if len(memory.windows) >= self.windows_per_partition:
            oldest = min(memory.windows)
            if oldest > window_start:
                return None
            del memory.windows[oldest]
        window = memory.windows[window_start] = _Window()
        return window


def held_registers(store: StateStore, wanted: bool) -> HeldRegisters:
    """HeldRegisters, on if `wanted` and only if this build and this Redis agree on
    where PFADD puts a member (statestore.hll); the log says which, and why."""
    off_because = None
    if not hll.available():
        off_because = "no C extension in this build"
    elif wanted and not store.hll_positions_agree():
        off_because = "this Redis hashes HyperLogLog members otherwise"
    if wanted and off_because is None:
        log.info("held registers on: only HyperLogLog members that raise a register are sent")
    elif wanted:
        log.warning("held registers off: every HyperLogLog member is sent", reason=off_because)
    return HeldRegisters(wanted and off_because is None, store.ttl_s)


_generations = itertools.count()


def next_generation() -> int:
    """A number no other PartitionCursor of this process has."""
    return next(_generations)
