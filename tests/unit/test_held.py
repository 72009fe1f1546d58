"""HLL members Redis already holds are left out of later batches (services.processor.held)."""

from __future__ import annotations

import fakeredis
import pytest

from services.common.windowing import Windowing
from services.processor.apply import BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetters
from services.processor.held import HeldMembers
from statestore import ApplyStatus, StateStore, WindowDelta
from tests.unit.protocol_fakes import FakeProducer, batch, click

TOPIC = "events"
WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040  # a window start


@pytest.fixture
def store():
    return StateStore(fakeredis.FakeRedis(), "held", TOPIC)


def sending_applier(store, monkeypatch, held_members_max=1000):
    """A BatchApplier, and the users each of its apply scripts was sent, per window."""
    applier = BatchApplier(
        store,
        DeadLetters(FakeProducer(), "dlq"),
        WINDOWING,
        "replica-a",
        held_members_max=held_members_max,
    )
    sent: list[dict[int, set[str]]] = []
    apply_batch = store.apply_batch

    def recording(partition, expected_fence, first, last, deltas, *args, **kwargs):
        sent.append({delta.window_start: set(delta.users) for delta in deltas})
        return apply_batch(partition, expected_fence, first, last, deltas, *args, **kwargs)

    monkeypatch.setattr(store, "apply_batch", recording)
    return applier, sent


def cursor_of(store, partition=0) -> PartitionCursor:
    state = store.partition_states([partition])[partition]
    return PartitionCursor(partition, state.fence, state.watermark_s, state.sealed_before)


def test_a_later_batch_of_the_window_sends_only_members_redis_does_not_hold(store, monkeypatch):
    applier, sent = sending_applier(store, monkeypatch)
    cursor = cursor_of(store)
    applier.apply(batch(TOPIC, 0, 0, [click(T0 + 1, "u1"), click(T0 + 2, "u2")]), cursor)
    applier.apply(batch(TOPIC, 0, 2, [click(T0 + 3, "u2"), click(T0 + 4, "u3")]), cursor)
    applier.apply(batch(TOPIC, 0, 4, [click(T0 + 5, "u1")]), cursor)
    assert sent == [{T0: {"u1", "u2"}}, {T0: {"u3"}}, {T0: set()}]
    window = store.read_window(T0, [0])
    assert (window.events, window.unique_users, window.unique_sessions) == (5, 3, 1)


def test_a_new_window_starts_from_nothing(store, monkeypatch):
    applier, sent = sending_applier(store, monkeypatch)
    cursor = cursor_of(store)
    applier.apply(batch(TOPIC, 0, 0, [click(T0 + 1, "u1")]), cursor)
    applier.apply(batch(TOPIC, 0, 1, [click(T0 + 61, "u1"), click(T0 + 2, "u1")]), cursor)
    assert sent == [{T0: {"u1"}}, {T0: set(), T0 + 60: {"u1"}}]


def test_a_new_cursor_sends_everything_again(store, monkeypatch):
    """After a resync or reassignment Redis may hold less than this replica saw apply:
    a Redis that lost its last writes rolls the fence back with them."""
    applier, sent = sending_applier(store, monkeypatch)
    cursor = cursor_of(store)
    applier.apply(batch(TOPIC, 0, 0, [click(T0 + 1, "u1")]), cursor)
    snapshot = {key: store.redis.dump(key) for key in store.redis.keys("*")}
    applier.apply(batch(TOPIC, 0, 1, [click(T0 + 2, "u2")]), cursor)
    applier.apply(batch(TOPIC, 0, 2, [click(T0 + 3, "u1"), click(T0 + 4, "u2")]), cursor)
    # Redis comes back from a snapshot taken after the first batch: writes lost.
    store.redis.flushall()
    for key, dumped in snapshot.items():
        store.redis.restore(key, 0, dumped)
    lost = batch(TOPIC, 0, 1, [click(T0 + 2, "u2")])
    assert applier.apply(lost, cursor) is ApplyStatus.STALE  # the old cursor is refused
    resynced = cursor_of(store)
    assert resynced.fence == 0
    applier.apply(batch(TOPIC, 0, 1, [click(T0 + 2, "u2")]), resynced)
    applier.apply(batch(TOPIC, 0, 2, [click(T0 + 3, "u1"), click(T0 + 4, "u2")]), resynced)
    held_by_old_cursor: set[str] = set()
    assert sent == [
        {T0: {"u1"}},
        {T0: {"u2"}},
        {T0: held_by_old_cursor},
        {T0: held_by_old_cursor},  # the refused attempt
        {T0: {"u2"}},  # the new cursor sends again what Redis lost
        {T0: {"u1"}},
    ]
    assert store.read_window(T0, [0]).unique_users == 2


def test_zero_capacity_sends_every_member_every_time(store, monkeypatch):
    applier, sent = sending_applier(store, monkeypatch, held_members_max=0)
    cursor = cursor_of(store)
    applier.apply(batch(TOPIC, 0, 0, [click(T0 + 1, "u1")]), cursor)
    applier.apply(batch(TOPIC, 0, 1, [click(T0 + 2, "u1")]), cursor)
    assert sent == [{T0: {"u1"}}, {T0: {"u1"}}]


def delta(window_start: int, users: set[str]) -> WindowDelta:
    return WindowDelta(window_start, users=set(users))


def left_out(held: HeldMembers, window_start: int, users: set[str], generation=0) -> set[str]:
    deltas = [delta(window_start, users)]
    held.leave_out(0, generation, deltas)
    return deltas[0].users


def test_a_full_memory_makes_room_from_older_windows_for_newer_ones():
    held = HeldMembers(capacity=3, ttl_s=3600)
    held.remember(0, 0, [delta(0, {"a", "b"})], sealed_before=-1)
    held.remember(1, 0, [delta(60, {"c"})], sealed_before=-1)
    assert held.size == 3
    held.remember(0, 0, [delta(120, {"d", "e"})], sealed_before=-1)  # forgets window 0
    assert held.size == 3
    assert left_out(held, 0, {"a", "b"}) == {"a", "b"}
    assert left_out(held, 120, {"d", "e", "f"}) == {"f"}
    # Nothing older left to forget: the newest members are sent every time instead.
    held.remember(0, 0, [delta(120, {"f", "g"})], sealed_before=-1)
    assert left_out(held, 120, {"f", "g"}) == {"f", "g"}
    assert held.size <= held.capacity


def test_sealed_and_idle_windows_are_forgotten():
    now = [0.0]
    held = HeldMembers(capacity=100, ttl_s=600, clock=lambda: now[0])
    held.remember(0, 0, [delta(0, {"a"}), delta(60, {"b"})], sealed_before=-1)
    held.remember(0, 0, [], sealed_before=60)
    assert left_out(held, 0, {"a"}) == {"a"}
    assert left_out(held, 60, {"b"}) == set()
    now[0] = 301.0  # past half the TTL without a batch: Redis may let the keys expire
    assert left_out(held, 60, {"b"}) == {"b"}
    assert held.size == 0


def test_memory_belongs_to_one_cursor_generation():
    held = HeldMembers(capacity=100, ttl_s=3600)
    held.remember(0, 7, [delta(0, {"a"})], sealed_before=-1)
    assert left_out(held, 0, {"a"}, generation=7) == set()
    assert left_out(held, 0, {"a"}, generation=8) == {"a"}
    assert held.size == 0
