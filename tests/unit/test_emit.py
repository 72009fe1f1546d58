"""The emit protocol in-process: Emitter against StateStore on fakeredis."""

from __future__ import annotations

import fakeredis
import msgspec
import pytest

from services.common.errors import PublishError
from services.common.window_record import (
    BREAKDOWN_TOP_N,
    MAX_RECORD_BYTES,
    OTHER,
    TOP_N,
    decode_record,
)
from services.common.windowing import Windowing
from services.processor.apply import TOO_LATE, BatchApplier, PartitionCursor
from services.processor.dead_letters import DeadLetters
from services.processor.emit import Emitter
from services.processor.watermark import StreamTime
from statestore import StateStore, encode_window_record
from statestore.types import NOT_SEALED
from tests.statestore_contract import delta
from tests.unit.protocol_fakes import Died, FakeProducer, batch, click

WINDOWING = Windowing(size_s=60, grace_s=10, allowed_lateness_s=120)
T0 = 1_700_000_040  # a window start
CLOSED = StreamTime(T0 + WINDOWING.size_s + WINDOWING.grace_s, None, frozenset())
SEALING = StreamTime(T0 + 1000, T0 + 1000, frozenset())


@pytest.fixture
def store():
    store = StateStore(fakeredis.FakeRedis(), "emit", "events")
    store.apply_batch(0, -1, 0, 1, [delta(T0, users=("a", "b"))], T0 + 30, {}, now_ms=1)
    return store


def emitter(store, producer, owner="replica-a") -> Emitter:
    return Emitter(store, producer, "metrics", WINDOWING, 1, owner, lease_ms=10_000)


def tick(emitter: Emitter, stream: StreamTime) -> int:
    return emitter.tick(lambda: stream, now_s=T0 + 100)


def test_a_closed_window_is_published_once_and_committed(store):
    producer = FakeProducer()
    assert tick(emitter(store, producer), CLOSED) == 1
    assert tick(emitter(store, producer), CLOSED) == 0  # unchanged: nothing new
    (published,) = producer.delivered
    record = decode_record(published.value)
    assert (record.revision, record.total_events, record.unique_users) == (1, 2, 2)
    assert store.emission(T0).revision == 1 and store.emission(T0).pending_record is None


def test_an_open_window_is_not_published(store):
    producer = FakeProducer()
    assert tick(emitter(store, producer), StreamTime(T0 + 69, None, frozenset())) == 0
    assert producer.delivered == []


def test_a_failed_publish_leaves_the_claim_pending_and_the_next_tick_publishes_it(store):
    broker = FakeProducer(fail=True)
    with pytest.raises(PublishError):
        tick(emitter(store, broker), CLOSED)
    emission = store.emission(T0)
    assert emission.revision == 0 and emission.pending_revision == 1
    claimed = emission.pending_record
    broker.fail = False
    assert tick(emitter(store, broker), CLOSED) == 1
    assert [record.value for record in broker.delivered] == [claimed]
    assert store.emission(T0).revision == 1 and store.emission(T0).pending_record is None


def test_an_unacknowledged_publish_leaves_the_claim_pending(store):
    with pytest.raises(PublishError):
        tick(emitter(store, FakeProducer(hold=True)), CLOSED)
    assert store.emission(T0).pending_revision == 1 and store.emission(T0).revision == 0


def test_a_revision_claimed_by_an_emitter_that_died_is_republished_with_the_same_bytes(store):
    dying = FakeProducer(die=True)
    with pytest.raises(Died):
        tick(emitter(store, dying, owner="replica-a"), CLOSED)
    ((sent, _callback),) = dying.queued  # produced, maybe delivered, never committed
    store.release_emitter_lease("replica-a")  # its lease expires
    # Later state changes must not leak into the claimed revision.
    store.apply_batch(0, 1, 2, 2, [delta(T0, users=("c",))], T0 + 31, {}, now_ms=2)
    successor = FakeProducer()
    assert tick(emitter(store, successor, owner="replica-b"), CLOSED) == 2
    first, second = successor.delivered
    assert first.value == sent.value and first.key == sent.key
    assert decode_record(first.value).revision == 1
    assert (decode_record(second.value).revision, decode_record(second.value).total_events) == (
        2,
        3,
    )


def test_a_window_past_its_lateness_is_sealed_published_final_and_forgotten(store):
    producer = FakeProducer()
    assert tick(emitter(store, producer), SEALING) == 1
    assert decode_record(producer.delivered[0].value).final
    assert store.partition_states([0])[0].sealed_before == T0 + WINDOWING.size_s
    assert store.windows_starting_by([0], T0) == []


def test_a_final_window_leaves_no_working_keys_and_a_late_batch_changes_nothing(store):
    producer = FakeProducer()
    assert tick(emitter(store, producer), SEALING) == 1
    window_keys = store.keys.window(0, T0)
    assert not any(store.redis.exists(key) for key in window_keys)
    final = store.emission(T0)
    # A late event for the window, folded by a replica that has not seen the seal yet.
    dead = FakeProducer()
    applier = BatchApplier(store, DeadLetters(dead, "dlq"), WINDOWING, "replica-b")
    cursor = PartitionCursor(0, 1, T0 + 30, -1)
    applier.apply(batch("events", 0, 2, [click(T0 + 5, "late-user")]), cursor)
    assert [dict(message.headers)["dlq.reason"] for message in dead.delivered] == [
        TOO_LATE.encode()
    ]
    assert not any(store.redis.exists(key) for key in window_keys)
    assert tick(emitter(store, producer), SEALING) == 0
    assert store.emission(T0) == final and len(producer.delivered) == 1


def test_a_window_with_thousands_of_categories_publishes_a_bounded_record_that_adds_up():
    store = StateStore(fakeredis.FakeRedis(), "emit", "events")
    categories = {f"category-{n:05d}": 1 + n % 7 for n in range(5000)}
    events = sum(categories.values())
    many = delta(T0, users=("a",), events=events)
    many.categories.update(categories)
    many.countries.update({"US": events})
    store.apply_batch(0, -1, 0, 1, [many], T0 + 30, {}, now_ms=1)
    producer = FakeProducer()
    assert tick(emitter(store, producer), CLOSED) == 1
    (published,) = producer.delivered
    record = decode_record(published.value)
    assert len(published.value) <= MAX_RECORD_BYTES
    assert len(record.categories) == BREAKDOWN_TOP_N + 1
    assert sum(record.categories.values()) == record.total_events == events
    assert record.categories[OTHER] == events - sum(sorted(categories.values())[-50:])
    # Ties at the cut go by name: the 50 kept are the lowest-numbered of count 7.
    kept = [name for name in record.categories if name != OTHER]
    assert kept == [f"category-{n:05d}" for n in range(6, 7 * 50, 7)]
    assert record.countries == {"US": events}


def test_a_record_of_long_names_over_the_bound_is_trimmed_until_it_fits(store):
    pages = {f"/{n:02d}/" + "x" * 2000: 100 - n for n in range(TOP_N)}
    store.apply_batch(0, 1, 2, 3, [delta(T0, pages=pages)], T0 + 31, {}, now_ms=2)
    totals = store.read_window(T0, [0])
    whole = encode_window_record(totals, 60, revision=1, final=False, published_at_s=T0)
    bounded = encode_window_record(
        totals, 60, revision=1, final=False, published_at_s=T0, max_bytes=len(whole) // 2
    )
    record = decode_record(bounded)
    assert len(bounded) <= len(whole) // 2 < len(whole)
    assert list(record.top_pages) == list(pages)[: len(record.top_pages)]
    assert 0 < len(record.top_pages) < TOP_N
    assert record.total_events == totals.events
    assert msgspec.json.decode(whole)["top_pages"] == pages


def test_only_the_lease_holder_publishes(store):
    assert store.acquire_emitter_lease("replica-a", 10_000)
    producer = FakeProducer()
    assert tick(emitter(store, producer, owner="replica-b"), CLOSED) == 0
    assert producer.delivered == []


def sealing_with_fences_of(store) -> StreamTime:
    fences = {p: state.fence for p, state in store.partition_states([0]).items()}
    return StreamTime(T0 + 1000, T0 + 1000, frozenset(), fences)


def test_state_lost_before_sealing_is_not_sealed_and_is_rebuilt_then_published(store):
    stream = sealing_with_fences_of(store)  # the emitter read fence 1 ...
    store.reset()  # ... then Redis lost everything
    producer = FakeProducer()
    assert tick(emitter(store, producer), stream) == 0
    assert producer.delivered == []
    assert store.partition_states([0])[0].sealed_before < T0  # rebuilt events still count
    store.apply_batch(0, -1, 0, 1, [delta(T0, users=("a", "b"))], T0 + 30, {}, now_ms=2)
    assert tick(emitter(store, producer), sealing_with_fences_of(store)) == 1
    record = decode_record(producer.delivered[0].value)
    assert (record.final, record.total_events, record.unique_users) == (True, 2, 2)


class LosesStateOnRead(StateStore):
    """Redis loses the window between the emitter's version read and its merge."""

    def read_window(self, window_start, partitions):
        self.reset()
        return super().read_window(window_start, partitions)


def test_a_window_that_shrank_during_the_tick_is_not_published():
    store = LosesStateOnRead(fakeredis.FakeRedis(), "emit", "events")
    store.apply_batch(0, -1, 0, 1, [delta(T0, users=("a", "b"))], T0 + 30, {}, now_ms=1)
    producer = FakeProducer()
    assert tick(emitter(store, producer), CLOSED) == 0
    assert producer.delivered == [] and store.emission(T0).revision == 0


def test_a_window_is_not_sealed_while_the_partition_count_is_unconfirmed(store):
    """A partition added since the last check (or a broker that does not answer) holds
    the seal: its records would otherwise come too late for the final revision."""
    producer = FakeProducer()
    answers = iter([False, True])
    unsure = Emitter(
        store,
        producer,
        "metrics",
        WINDOWING,
        1,
        "replica-a",
        lease_ms=10_000,
        confirm_partitions=lambda: next(answers),
    )
    tick(unsure, SEALING)
    assert store.partition_states([0])[0].sealed_before == NOT_SEALED
    assert not any(decode_record(m.value).final for m in producer.delivered)
    tick(unsure, SEALING)
    assert decode_record(producer.delivered[-1].value).final


def test_a_topic_grown_during_a_tick_seals_no_later_window_in_that_tick():
    """The stream time of a tick was read over the partitions known at its start."""
    store = StateStore(fakeredis.FakeRedis(), "emit", "events")
    later = T0 + WINDOWING.size_s
    store.apply_batch(
        0, -1, 0, 1, [delta(T0, users=("a",)), delta(later, users=("b",))], later + 30, {}, 1
    )
    producer = FakeProducer()
    grower = Emitter(store, producer, "metrics", WINDOWING, 1, "replica-a", lease_ms=10_000)

    def grown() -> bool:
        # As the processor answers: the first ask finds a new partition and grows the
        # emitter's partitions; later asks find the count unchanged.
        unchanged = grower.partitions == range(2)
        grower.partitions = range(2)
        return unchanged

    grower.confirm_partitions = grown
    emitter_tick = grower.tick(lambda: StreamTime(later + 1000, later + 1000, frozenset()), T0)
    assert emitter_tick == 0 and producer.delivered == []
    assert store.partition_states([0])[0].sealed_before == NOT_SEALED
