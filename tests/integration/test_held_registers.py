"""Leaving out members that raise no register changes no HyperLogLog (real Redis).

Also: this Redis puts members where statestore.hll says, in both of its encodings.
"""

from __future__ import annotations

import random
import string
import uuid

import pytest
import redis

from services.common.windowing import Windowing
from services.processor.apply import BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetters
from statestore import ApplyStatus, StateStore, hll
from statestore.metrics import HLLS
from tests.unit.protocol_fakes import FakeProducer, batch, click

pytestmark = pytest.mark.integration

TOPIC = "events"
WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040
BATCHES, BATCH_SIZE, USERS = 40, 250, 3000


@pytest.fixture
def client(stack):
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


def traffic(seed: int) -> list[list]:
    """Batches of clicks in two windows, users and sessions recurring across batches."""
    rng = random.Random(seed)
    batches = []
    for index in range(BATCHES):
        at = T0 + index * 120 / BATCHES
        users = [f"user-{rng.randrange(USERS)}" for _ in range(BATCH_SIZE)]
        clicks = [
            click(at + n / BATCH_SIZE, u, f"s-{u}-{index // 10}") for n, u in enumerate(users)
        ]
        batches.append(clicks)
    return batches


def run(client, hold_registers: bool, batches, drop_state_after: int | None = None):
    """Apply `batches` to partition 0 as a replica does; returns the store and how
    many HLL members its scripts were sent.

    `drop_state_after`: Redis loses everything after that batch (restored from a
    snapshot), and the replica resyncs as the processor does on a refused batch."""
    store = StateStore(client, f"test-held-{uuid.uuid4().hex[:8]}", TOPIC)
    applier = BatchApplier(
        store,
        DeadLetters(FakeProducer(), "dlq"),
        WINDOWING,
        "replica-a",
    )
    applier.hold_registers(hold_registers)
    assert applier.held.enabled is hold_registers
    sent = []
    apply_batch = store.apply_batch

    def counting(partition, expected_fence, first, last, deltas, *args, **kwargs):
        sent.append(sum(len(getattr(d, metric.name)) for d in deltas for metric in HLLS))
        return apply_batch(partition, expected_fence, first, last, deltas, *args, **kwargs)

    store.apply_batch = counting  # a spy: every call goes on to the real script
    cursor, offset, snapshot, index = _cursor(store), 0, None, 0
    while index < len(batches):
        events = batches[index]
        status = applier.apply(batch(TOPIC, 0, offset, events), cursor)
        if status is ApplyStatus.STALE:
            cursor = _cursor(store)
            offset, index = cursor.fence + 1, (cursor.fence + 1) // BATCH_SIZE
            continue
        assert status is ApplyStatus.APPLIED
        offset += len(events)
        index += 1
        if index == drop_state_after:
            snapshot = {
                key: client.dump(key) for key in client.keys(store.keys.namespace_pattern())
            }
        if snapshot is not None and index == drop_state_after + 5:
            for key in client.keys(store.keys.namespace_pattern()):
                client.delete(key)
            for key, dumped in snapshot.items():
                client.restore(key, 0, dumped)
            snapshot = None
    return store, sum(sent)


def _cursor(store) -> PartitionCursor:
    state = store.partition_states([0])[0]
    return PartitionCursor(0, state.fence, state.watermark_s, state.sealed_before)


def hll_keys(store, window_start: int) -> list[str]:
    window_keys = store.keys.window(0, window_start)
    return [window_keys[1 + index] for index in range(len(HLLS))]


def registers_of(client, key: str) -> bytes | None:
    value = client.get(key)
    return None if value is None else hll.decode_registers(value)


def members_of(batches, window_start: int) -> dict[str, set[str]]:
    """The members each HLL of the window must hold (clicks are page views: the cart and
    purchase HLLs stay empty)."""
    events = [
        e
        for events in batches
        for e in events
        if window_start <= e.timestamp.timestamp() < window_start + 60
    ]
    return {"users": {e.user_id for e in events}, "sessions": {e.session_id for e in events}}


@pytest.mark.parametrize("lost_writes", [False, True], ids=["steady", "redis-lost-writes"])
def test_members_left_out_leave_every_register_as_sending_them_all_would(client, lost_writes):
    batches = traffic(seed=5)
    every_time, sent_without = run(client, False, batches)
    held, sent_with = run(client, True, batches, drop_state_after=12 if lost_writes else None)
    distinct = sum(
        len(members) for start in (T0, T0 + 60) for members in members_of(batches, start).values()
    )
    # Steady, no member goes twice to a window; after lost writes some go again.
    assert sent_with <= distinct if not lost_writes else sent_with < sent_without
    try:
        for window_start in (T0, T0 + 60):
            expected = members_of(batches, window_start)
            keys = zip(
                hll_keys(every_time, window_start), hll_keys(held, window_start), HLLS, strict=True
            )
            for sent_all, left_out, metric in keys:
                assert registers_of(client, left_out) == registers_of(client, sent_all)
                members = expected.get(metric.name)
                if members:
                    # PFADD answers 1 when it changes a register: with every member
                    # the window had, no register of either HLL may change.
                    assert client.pfadd(left_out, *members) == 0, metric.name
                    assert client.pfadd(sent_all, *members) == 0, metric.name
    finally:
        every_time.reset()
        held.reset()


def test_this_redis_puts_members_where_the_client_says(client):
    store = StateStore(client, f"test-held-{uuid.uuid4().hex[:8]}", TOPIC)
    assert store.hll_positions_agree() is True
    assert client.keys(store.keys.namespace_pattern()) == []  # the probe cleans up


@pytest.mark.parametrize("count", [50, 20_000], ids=["sparse", "dense"])
def test_client_registers_equal_the_registers_redis_keeps(client, count):
    rng = random.Random(count)
    alphabet = string.printable + "éü✓𝄞"
    members = [f"user_{n}" for n in range(count // 2)] + [
        "".join(rng.choices(alphabet, k=rng.randrange(40))) for _ in range(count // 2)
    ]
    key = f"test-held-{uuid.uuid4().hex[:8]}"
    try:
        for start in range(0, len(members), 1000):
            client.pfadd(key, *members[start : start + 1000])
        value = client.get(key)
        assert value[4] == (1 if count == 50 else 0)  # the encoding this case is about
        registers = hll.empty_registers()
        hll.raise_registers(registers, members)
        assert hll.decode_registers(value) == bytes(registers)
    finally:
        client.delete(key)
