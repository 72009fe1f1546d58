"""Behaviour of the state store's scripts, run against fakeredis (unit) and real Redis.

Subclasses provide the `client` fixture. fakeredis stores HyperLogLogs as sets,
so its counts are exact; on real Redis small cardinalities are exact too.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from statestore import METRICS, ApplyStatus, Kind, StateStore, WindowDelta
from statestore.metrics import WINDOW_KEY_SUFFIXES

W = 60


def delta(window_start, users=("u1",), sessions=("s1",), pages=None, **counts):
    return WindowDelta(
        window_start=window_start,
        events=counts.get("events", len(users)),
        duration_ms=counts.get("duration_ms", 100),
        late=counts.get("late", 0),
        event_types=Counter(counts.get("event_types", {"page_view": len(users)})),
        devices=Counter({"mobile": len(users)}),
        users=set(users),
        sessions=set(sessions),
        cart_sessions=set(counts.get("cart", ())),
        purchase_sessions=set(),
        pages=pages or {"/": len(users)},
        referrers={"google.com": len(users)},
    )


def full_delta(window_start):
    """A delta with a value for every metric of the table, so every window key is written."""
    delta = WindowDelta(window_start)
    for metric in METRICS:
        if metric.kind is Kind.COUNTER:
            setattr(delta, metric.name, 1)
        elif metric.kind is Kind.HLL:
            setattr(delta, metric.name, {"member"})
        else:
            setattr(delta, metric.name, Counter({"value": 1}))
    return delta


class StateStoreContract:
    @pytest.fixture
    def store(self, client):
        store = StateStore(client, f"contract-{uuid.uuid4().hex[:8]}", "events", ttl_s=600)
        yield store
        store.reset()

    def apply(self, store, partition, expected, first, last, deltas, watermark_s=None, dlq=None):
        return store.apply_batch(
            partition, expected, first, last, deltas, watermark_s, dlq or {}, 1, owner="replica-a"
        )

    def test_batch_applies_once_and_moves_fence_and_watermark(self, store):
        result = self.apply(store, 0, -1, 0, 9, [delta(0, users=("a", "b"))], watermark_s=30.5)
        assert result.status is ApplyStatus.APPLIED and result.fence == 9
        state = store.partition_states([0])[0]
        assert state.fence == 9 and state.watermark_s == 30.5 and state.owner == "replica-a"
        totals = store.read_window(0, [0])
        assert totals.events == 2 and totals.unique_users == 2

    def test_every_window_key_expires_after_apply(self, store, client):
        self.apply(store, 0, -1, 0, 0, [full_delta(W)])
        keys = store.keys.window(0, W)
        missing = [key for key in keys if not client.exists(key)]
        assert not missing, f"window keys not written: {missing}"
        without_ttl = [key for key in keys if not 0 < client.ttl(key) <= 600]
        assert not without_ttl, f"window keys without a TTL: {without_ttl}"

    def test_replayed_batch_is_a_no_op_and_says_so(self, store):
        self.apply(store, 0, -1, 0, 9, [delta(0)])
        again = self.apply(store, 0, -1, 0, 9, [delta(0)])
        assert again.status is ApplyStatus.STALE and again.fence == 9
        assert store.read_window(0, [0]).events == 1

    def test_zombie_with_an_old_fence_is_refused_even_for_new_offsets(self, store):
        self.apply(store, 0, -1, 0, 9, [delta(0)])
        self.apply(store, 0, 9, 10, 19, [delta(0)])
        zombie = self.apply(store, 0, 9, 20, 29, [delta(0)])
        assert zombie.status is ApplyStatus.STALE and zombie.fence == 19
        assert store.read_window(0, [0]).events == 2

    def test_batch_not_after_the_fence_is_refused(self, store):
        self.apply(store, 0, -1, 0, 9, [delta(0)])
        overlap = self.apply(store, 0, 9, 5, 15, [delta(0)])
        assert overlap.status is ApplyStatus.STALE

    def test_sealed_window_refuses_the_whole_batch(self, store):
        store.seal([0], W)
        result = self.apply(store, 0, -1, 0, 9, [delta(0), delta(W)])
        assert result.status is ApplyStatus.SEALED and result.sealed_before == W
        assert store.partition_states([0])[0].fence == -1
        ok = self.apply(store, 0, -1, 0, 9, [delta(W)])
        assert ok.status is ApplyStatus.APPLIED

    def test_a_partition_whose_fence_went_back_is_not_sealed(self, store):
        self.apply(store, 0, -1, 0, 9, [delta(0)])
        self.apply(store, 1, -1, 0, 4, [delta(0)])
        seen = {0: 9, 1: 4}
        store.redis.delete(store.keys.partition(1))  # partition 1's state is lost
        assert not store.seal([0, 1], W, seen)
        states = store.partition_states([0, 1])
        assert states[0].sealed_before == W  # intact: sealed as decided
        assert states[1].sealed_before < W  # its rebuild must not become too late
        assert store.seal([0], 2 * W, seen)

    def test_windows_merge_across_partitions(self, store):
        self.apply(store, 0, -1, 0, 0, [delta(0, users=("a", "b"), pages={"/x": 2})])
        self.apply(store, 1, -1, 0, 0, [delta(0, users=("b", "c"), pages={"/x": 1, "/y": 1})])
        self.apply(store, 2, -1, 0, 0, [delta(W, users=("z",))])
        totals = store.read_window(0, range(3))
        assert totals.events == 4 and totals.unique_users == 3
        assert totals.pages == {"/x": 3, "/y": 1}
        assert totals.event_types == {"page_view": 4}
        assert store.windows_starting_by(range(3), W) == [0, W]
        assert store.window_versions([0, W], range(3)) == {0: 4, W: 1}

    def test_dead_letters_are_counted_with_the_batch(self, store):
        self.apply(store, 3, -1, 0, 4, [], dlq={"not_json": 2, "too_late": 1})
        state = store.partition_states([3])[3]
        assert state.dead_letters == {"not_json": 2, "too_late": 1} and state.fence == 4

    def test_large_member_sets_are_added_in_slices(self, store):
        users = [f"user-{n}" for n in range(2500)]
        self.apply(store, 0, -1, 0, 0, [delta(0, users=users, sessions=users)])
        totals = store.read_window(0, [0])
        assert abs(totals.unique_users - 2500) <= 2500 * 0.02

    def test_revision_claim_is_write_ahead_and_commit_advances(self, store):
        assert store.claim_revision(0, 0, b"rev1", 5, False).claimed
        second = store.claim_revision(0, 0, b"other", 6, False)
        assert not second.claimed and second.pending.pending_record == b"rev1"
        assert second.pending.pending_revision == 1
        assert store.commit_revision(0, 1)
        assert not store.commit_revision(0, 1)  # a second emitter's commit is a no-op
        emission = store.emission(0)
        assert (emission.revision, emission.version, emission.final) == (1, 5, False)
        assert emission.pending_record is None
        assert not store.claim_revision(0, 0, b"stale", 7, False).claimed
        assert store.claim_revision(0, 1, b"rev2", 7, True).claimed

    def test_emitter_lease_has_one_holder(self, store):
        assert store.acquire_emitter_lease("a", 5000)
        assert not store.acquire_emitter_lease("b", 5000)
        assert store.acquire_emitter_lease("a", 5000)
        store.release_emitter_lease("b")  # not the holder: nothing changes
        assert not store.acquire_emitter_lease("b", 5000)
        store.release_emitter_lease("a")
        assert store.acquire_emitter_lease("b", 5000)

    def test_an_unrenewed_emitter_lease_expires(self, store):
        assert store.acquire_emitter_lease("a", 5000)
        assert 0 < store.redis.pttl(store.keys.emitter_lease()) <= 5000
        store.redis.pexpire(store.keys.emitter_lease(), 1)
        wait = time.monotonic() + 5
        while store.redis.exists(store.keys.emitter_lease()):
            assert time.monotonic() < wait, "the lease never expired"
            time.sleep(0.01)
        assert store.acquire_emitter_lease("b", 5000)

    def test_in_progress_window_is_the_newest_unpublished_one(self, store):
        assert store.in_progress_window() is None
        store.record_topology(2, W)
        self.apply(store, 0, -1, 0, 0, [delta(0), delta(W, users=("a", "b"))])
        totals, size = store.in_progress_window()
        assert totals.window_start == W and totals.events == 2 and size == W
        store.claim_revision(W, 0, b"r", 2, False)
        store.commit_revision(W, 1)
        assert store.in_progress_window() is None

    def test_reset_removes_only_its_namespace(self, store, client):
        other = StateStore(client, store.keys.namespace + "x", "events")
        self.apply(store, 0, -1, 0, 0, [delta(0)])
        self.apply(other, 0, -1, 0, 0, [delta(0)])
        assert store.reset() > 0
        assert store.partition_states([0])[0].fence == -1
        assert other.partition_states([0])[0].fence == 0
        other.reset()

    def test_a_capped_zset_admits_first_comers_and_counts_the_refused_events(self, client):
        store = StateStore(client, f"contract-{uuid.uuid4().hex[:8]}", "events", sorted_set_cap=3)
        try:
            pages = {"/a": 1, "/b": 2, "/c": 1, "/d": 5, "/a ": 1}
            self.apply(store, 0, -1, 0, 0, [delta(0, users=("u",) * 10, pages=pages)])
            self.apply(store, 0, 0, 1, 1, [delta(0, pages={"/e": 4, "/b": 3})])
            totals = store.read_window(0, [0])
            assert totals.pages == {"/a": 1, "/b": 5, "/c": 1}
            assert totals.pages_overflow == 5 + 1 + 4
            assert totals.referrers_overflow == 0
        finally:
            store.reset()

    def test_members_holding_the_list_separator_count_exactly(self, store):
        users = ("a\nb", "a", "b", "\u00fc")
        holding = delta(0, users=users, pages={"/x\ny": 2, "/x": 1, "/\u00e9": 3})
        holding.categories = Counter({"home\ngarden": 2, "home": 1})
        self.apply(store, 0, -1, 0, 0, [holding])
        totals = store.read_window(0, [0])
        assert totals.unique_users == 4
        assert totals.pages == {"/x\ny": 2, "/x": 1, "/\u00e9": 3}
        assert totals.categories == {"home\ngarden": 2, "home": 1}

    def test_the_cap_holds_across_a_batch_larger_than_one_call_of_members(self, client):
        store = StateStore(
            client, f"contract-{uuid.uuid4().hex[:8]}", "events", sorted_set_cap=1500
        )
        try:
            self.apply(store, 0, -1, 0, 0, [delta(0, pages={"/old": 1})])
            pages = {f"/p{n}": 2 for n in range(2500)} | {"/old": 3}
            self.apply(store, 0, 0, 1, 1, [delta(0, pages=pages)])
            pages_key = store.keys.window(0, 0)[WINDOW_KEY_SUFFIXES.index("pg")]
            admitted = client.zrange(pages_key, 0, -1, withscores=True)
            counts = {member.decode(): int(score) for member, score in admitted}
            assert counts == {"/old": 4} | {f"/p{n}": 2 for n in range(1499)}
            totals = store.read_window(0, [0])
            assert totals.pages_overflow == 2 * (2500 - 1499)
        finally:
            store.reset()

    def test_cap_admission_does_not_depend_on_batch_boundaries(self, client):
        pages = [{f"/p{n % 7}": 1} for n in range(40)] + [{f"/q{n}": 2} for n in range(10)]
        outcomes = []
        for batch_size in (50, 1, 3, 17):
            store = StateStore(
                client, f"contract-{uuid.uuid4().hex[:8]}", "events", sorted_set_cap=9
            )
            try:
                for first in range(0, len(pages), batch_size):
                    merged: Counter = Counter()
                    for counts in pages[first : first + batch_size]:
                        merged.update(counts)
                    self.apply(
                        store,
                        0,
                        first - 1,
                        first,
                        first + batch_size - 1,
                        [delta(0, pages=dict(merged))],
                    )
                totals = store.read_window(0, [0])
                outcomes.append((dict(totals.pages), totals.pages_overflow))
            finally:
                store.reset()
        # The first 9 distinct pages in offset order: /p0../p6, then /q0 and /q1.
        admitted = {f"/p{n}": len(range(n, 40, 7)) for n in range(7)} | {"/q0": 2, "/q1": 2}
        assert outcomes[0] == (admitted, 8 * 2)
        assert all(outcome == outcomes[0] for outcome in outcomes)

    def test_forgetting_a_final_window_deletes_its_working_keys_in_every_partition(
        self, store, client
    ):
        self.apply(store, 0, -1, 0, 0, [full_delta(0), full_delta(W)])
        self.apply(store, 1, -1, 0, 0, [full_delta(0)])
        store.forget_window(range(2), 0)
        left = [key for p in range(2) for key in store.keys.window(p, 0) if client.exists(key)]
        assert not left, f"working keys left after the window was final: {left}"
        assert store.windows_starting_by(range(2), W) == [W]
        assert all(client.exists(key) for key in store.keys.window(0, W))
