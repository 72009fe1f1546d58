"""Registers Redis already holds keep members out of later batches (services.processor.held).

Which members raise a register is statestore.hll's arithmetic (tests/unit/test_hll.py);
here, whose registers count: one cursor's, one window's, only after APPLIED.
tests/integration/test_held_registers.py runs the same against real Redis.
"""

from __future__ import annotations

import fakeredis
import pytest

from services.common.windowing import Windowing
from services.processor.apply import BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetters
from services.processor.held import HeldRegisters
from statestore import StateStore, WindowDelta, hll
from tests.unit.protocol_fakes import FakeProducer, batch, click

pytestmark = pytest.mark.skipif(not hll.available(), reason="statestore._hll is not built")

TOPIC = "events"
WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040  # a window start


def delta(window_start: int, users) -> WindowDelta:
    return WindowDelta(window_start, users=set(users))


def left_out(held: HeldRegisters, window_start: int, users, generation=0) -> set[str]:
    deltas = [delta(window_start, users)]
    held.leave_out(0, generation, deltas)
    return set(deltas[0].users)


def applied(held: HeldRegisters, window_start: int, users, generation=0, sealed_before=-1):
    """One batch as the applier runs it: leave out, then remember once APPLIED."""
    deltas = [delta(window_start, users)]
    held.leave_out(0, generation, deltas)
    held.remember(0, generation, deltas, sealed_before)
    return set(deltas[0].users)


def test_a_later_batch_of_the_window_sends_only_members_that_raise_a_register():
    held = HeldRegisters(True, ttl_s=3600)
    assert applied(held, T0, {"u1", "u2"}) == {"u1", "u2"}
    assert applied(held, T0, {"u2", "u3"}) == {"u3"}
    assert applied(held, T0, {"u1", "u2", "u3"}) == set()


def test_registers_count_only_once_the_batch_was_applied():
    held = HeldRegisters(True, ttl_s=3600)
    assert left_out(held, T0, {"u1"}) == {"u1"}  # refused, or never settled
    assert left_out(held, T0, {"u1"}) == {"u1"}


def test_a_new_window_starts_from_nothing():
    held = HeldRegisters(True, ttl_s=3600)
    applied(held, T0, {"u1"})
    assert left_out(held, T0 + 60, {"u1"}) == {"u1"}


def test_a_new_cursor_sends_everything_again():
    """After a resync or reassignment Redis may hold less than this replica saw apply:
    a Redis that lost its last writes rolls the fence back with them."""
    held = HeldRegisters(True, ttl_s=3600)
    applied(held, T0, {"a"}, generation=7)
    assert left_out(held, T0, {"a"}, generation=7) == set()
    assert left_out(held, T0, {"a"}, generation=8) == {"a"}
    assert left_out(held, T0, {"a"}, generation=7) == {"a"}  # generation 7 is gone for good


def test_sealed_and_idle_windows_are_forgotten():
    now = [0.0]
    held = HeldRegisters(True, ttl_s=600, clock=lambda: now[0])
    held.remember(0, 0, [delta(0, {"a"}), delta(60, {"b"})], sealed_before=-1)
    held.remember(0, 0, [], sealed_before=60)
    assert held.held_windows(0) == [60]
    assert left_out(held, 60, {"b"}) == set()
    now[0] = 301.0  # past half the TTL without a batch: Redis may let the keys expire
    assert left_out(held, 60, {"b"}) == {"b"}
    assert held.held_windows(0) == []


def test_a_full_partition_forgets_its_oldest_window_for_a_newer_one():
    held = HeldRegisters(True, ttl_s=3600, windows_per_partition=2)
    for start in (60, 120, 180):
        applied(held, start, {"a"})
    assert held.held_windows(0) == [120, 180]
    applied(held, 0, {"a"})  # older than every window held: sent, never held
    assert held.held_windows(0) == [120, 180]
    assert left_out(held, 60, {"a"}) == {"a"}
    assert left_out(held, 180, {"a"}) == set()


def test_off_leaves_every_member_in():
    held = HeldRegisters(False, ttl_s=3600)
    assert applied(held, T0, {"u1"}) == {"u1"}
    assert applied(held, T0, {"u1"}) == {"u1"}
    assert held.held_windows(0) == []


def test_a_redis_that_hashes_otherwise_gets_every_member(monkeypatch):
    """fakeredis keeps HyperLogLogs as sets: the start-up probe disagrees, so the
    applier sends every member, every batch, and the counts stay exact there too."""
    store = StateStore(fakeredis.FakeRedis(), "held", TOPIC)
    applier = BatchApplier(store, DeadLetters(FakeProducer(), "dlq"), WINDOWING, "replica-a")
    applier.hold_registers(True)
    sent: list[set[str]] = []
    apply_batch = store.apply_batch

    def recording(partition, expected_fence, first, last, deltas, *args, **kwargs):
        sent.extend(set(delta.users) for delta in deltas)
        return apply_batch(partition, expected_fence, first, last, deltas, *args, **kwargs)

    monkeypatch.setattr(store, "apply_batch", recording)
    cursor = PartitionCursor(0, -1, None, -1)
    applier.apply(batch(TOPIC, 0, 0, [click(T0 + 1, "u1"), click(T0 + 2, "u2")]), cursor)
    applier.apply(batch(TOPIC, 0, 2, [click(T0 + 3, "u2"), click(T0 + 4, "u1")]), cursor)
    assert applier.held.enabled is False
    assert sent == [{"u1", "u2"}, {"u1", "u2"}]
    assert store.read_window(T0, [0]).unique_users == 2
