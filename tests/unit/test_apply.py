"""The apply protocol in-process: BatchApplier against StateStore on fakeredis."""

from __future__ import annotations

import fakeredis
import pytest

from services.common.windowing import Windowing
from services.processor.apply import TOO_LATE, BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetterError, DeadLetters
from statestore import NO_FENCE, ApplyStatus, StateStore
from tests.unit.protocol_fakes import FakeProducer, batch, click

TOPIC = "events"
WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040  # a window start


@pytest.fixture
def store():
    return StateStore(fakeredis.FakeRedis(), "apply", TOPIC)


def applier(store, producer=None) -> tuple[BatchApplier, FakeProducer]:
    producer = producer or FakeProducer()
    return BatchApplier(store, DeadLetters(producer, "dlq"), WINDOWING, "replica-a"), producer


def fresh_cursor(store, partition=0) -> PartitionCursor:
    state = store.partition_states([partition])[partition]
    return PartitionCursor(partition, state.fence, state.watermark_s, state.sealed_before)


def test_applied_batch_moves_fence_watermark_and_counts_its_events(store):
    apply, _ = applier(store)
    cursor = fresh_cursor(store)
    status = apply.apply(batch(TOPIC, 0, 0, [click(T0 + 1), click(T0 + 2, "u2")]), cursor)
    assert status is ApplyStatus.APPLIED
    assert (cursor.fence, cursor.watermark_s) == (1, T0 + 2)
    assert store.partition_states([0])[0].fence == 1
    assert store.read_window(T0, [0]).events == 2


def test_batch_from_a_stale_cursor_is_refused_and_changes_nothing(store):
    owner, _ = applier(store)
    zombie, _ = applier(store)
    stale = fresh_cursor(store)
    owner.apply(batch(TOPIC, 0, 0, [click(T0 + 1)]), fresh_cursor(store))
    status = zombie.apply(batch(TOPIC, 0, 1, [click(T0 + 2)]), stale)
    assert status is ApplyStatus.STALE
    assert stale.fence == NO_FENCE  # the caller re-reads and seeks
    assert store.partition_states([0])[0].fence == 0
    assert store.read_window(T0, [0]).events == 1


def test_dead_letters_are_confirmed_before_the_fence_moves_past_them(store, monkeypatch):
    apply, producer = applier(store)
    delivered_when_applied = []
    apply_batch = store.apply_batch

    def watched_apply_batch(*args, **kwargs):
        delivered_when_applied.append((len(producer.delivered), len(producer.queued)))
        return apply_batch(*args, **kwargs)

    monkeypatch.setattr(store, "apply_batch", watched_apply_batch)
    status = apply.apply(batch(TOPIC, 0, 0, [click(T0 + 1)], rejects=2), fresh_cursor(store))
    assert status is ApplyStatus.APPLIED
    assert [(r.topic, r.value) for r in producer.delivered] == [("dlq", b"not json")] * 2
    assert delivered_when_applied == [(2, 0)]  # both acknowledged, none in flight
    state = store.partition_states([0])[0]
    assert state.fence == 2 and state.dead_letters == {"not_json": 2}


@pytest.mark.parametrize("broker", ["holds", "fails"])
def test_unconfirmed_dead_letters_leave_the_fence_where_it_was(store, broker):
    apply, _ = applier(store, FakeProducer(hold=broker == "holds", fail=broker == "fails"))
    cursor = fresh_cursor(store)
    with pytest.raises(DeadLetterError):
        apply.apply(batch(TOPIC, 0, 0, [click(T0 + 1)], rejects=1), cursor)
    state = store.partition_states([0])[0]
    assert state.fence == NO_FENCE and state.dead_letters == {}
    assert cursor.fence == NO_FENCE
    assert store.read_window(T0, [0]).events == 0


def test_events_of_a_window_sealed_meanwhile_are_refolded_as_too_late(store):
    apply, producer = applier(store)
    cursor = fresh_cursor(store)  # read before the emitter sealed the window
    store.seal([0], T0 + 60)
    events = [click(T0 + 1), click(T0 + 61, "u2")]
    status = apply.apply(batch(TOPIC, 0, 0, events), cursor)
    assert status is ApplyStatus.APPLIED
    assert cursor.sealed_before == T0 + 60 and cursor.fence == 1
    assert store.read_window(T0, [0]).events == 0
    assert store.read_window(T0 + 60, [0]).events == 1
    assert store.partition_states([0])[0].dead_letters == {TOO_LATE: 1}
    (dead,) = producer.delivered
    assert dict(dead.headers)["dlq.source.offset"] == b"0"
    assert dict(dead.headers)["dlq.reason"] == TOO_LATE.encode()


def test_a_refold_does_not_send_a_dead_letter_twice(store):
    apply, producer = applier(store)
    cursor = fresh_cursor(store)
    store.seal([0], T0 + 60)
    status = apply.apply(batch(TOPIC, 0, 0, [click(T0 + 1)], rejects=1), cursor)
    assert status is ApplyStatus.APPLIED
    offsets = sorted(dict(r.headers)["dlq.source.offset"] for r in producer.delivered)
    assert offsets == [b"0", b"1"]


def test_a_poll_holds_back_only_the_batch_whose_dead_letters_went_unconfirmed(store):
    apply, _ = applier(store, FakeProducer(fail=True))
    cursors = [fresh_cursor(store, partition) for partition in range(3)]
    work = [
        (batch(TOPIC, 0, 0, [click(T0 + 1)]), cursors[0]),
        (batch(TOPIC, 1, 0, [click(T0 + 2)], rejects=1), cursors[1]),
        (batch(TOPIC, 2, 0, [click(T0 + 3), click(T0 + 4, "u2")]), cursors[2]),
    ]
    unconfirmed = apply.start_all(work)  # as the processor runs a poll
    statuses = {batch.partition: status for batch, status in apply.finish_all()}
    assert statuses == {0: ApplyStatus.APPLIED, 2: ApplyStatus.APPLIED}
    assert list(unconfirmed) == [1] and isinstance(unconfirmed[1], DeadLetterError)
    states = store.partition_states(range(3))
    assert [states[p].fence for p in range(3)] == [0, NO_FENCE, 1]
    assert [cursor.fence for cursor in cursors] == [0, NO_FENCE, 1]
    assert store.read_window(T0, range(3)).events == 3


def test_a_poll_refolds_only_the_batch_under_a_sealed_window_and_sends_its_dead_letters_once(
    store,
):
    apply, producer = applier(store)
    cursors = [fresh_cursor(store, partition) for partition in range(2)]
    store.seal([0], T0 + 60)  # after the cursors were read
    work = [
        (batch(TOPIC, 0, 0, [click(T0 + 1), click(T0 + 61, "u2")], rejects=1), cursors[0]),
        (batch(TOPIC, 1, 0, [click(T0 + 2)]), cursors[1]),
    ]
    assert apply.start_all(work) == {}
    settled = [(batch.partition, status) for batch, status in apply.finish_all()]
    assert settled == [(0, ApplyStatus.APPLIED), (1, ApplyStatus.APPLIED)]
    assert store.read_window(T0, [0]).events == 0
    assert store.read_window(T0 + 60, [0]).events == 1
    assert store.read_window(T0, [1]).events == 1
    offsets = sorted(dict(r.headers)["dlq.source.offset"] for r in producer.delivered)
    assert offsets == [b"0", b"2"]
    assert store.partition_states([0])[0].dead_letters == {TOO_LATE: 1, "not_json": 1}
