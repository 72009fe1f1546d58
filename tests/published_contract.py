"""Behaviour of the published copies and rollup sketches, on fakeredis (unit) and real Redis.

Subclasses provide `clients`: a sync and an async client of the same Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from statestore import StateStore
from statestore.published import PublishedReader, PublishedStore
from statestore.rollups import RollupReader
from statestore.sketches import WindowSummary
from tests.statestore_contract import delta

W = 60


class PublishedContract:
    @pytest.fixture(autouse=True)
    def event_loop(self):
        # One loop per test: redis.asyncio connections belong to the loop that opened them.
        self.loop = asyncio.new_event_loop()
        yield self.loop
        self.loop.close()

    @pytest.fixture
    def store(self, clients):
        sync_client, _ = clients
        store = StateStore(sync_client, f"published-{uuid.uuid4().hex[:8]}", "events", ttl_s=600)
        store.record_topology(2, W)
        yield store
        store.reset()

    @pytest.fixture
    def published(self, store):
        return PublishedStore(store, retention_s=3600, keep_revisions=2)

    @pytest.fixture
    def readers(self, clients, store):
        _, async_client = clients
        return PublishedReader(async_client, store.keys), RollupReader(async_client, store.keys)

    def publish(self, store, published, window_start, revision, final=False):
        record = json.dumps({"window_start": window_start, "revision": revision}).encode()
        assert store.claim_revision(window_start, revision - 1, record, revision, final).claimed
        assert published.commit(window_start, revision)
        return record

    def apply(self, store, partition, window_start, users, first=0):
        fence = store.partition_states([partition])[partition].fence
        store.apply_batch(
            partition, fence, first, first, [delta(window_start, users=users)], None, {}, 1
        )

    def test_committed_revision_is_kept_as_latest_and_by_revision(self, store, published, readers):
        reader, _ = readers
        first = self.publish(store, published, 0, 1)
        second = self.publish(store, published, 0, 2)
        assert self.loop.run_until_complete(reader.window(0)) == second
        assert self.loop.run_until_complete(reader.window(0, revision=1)) == first
        assert self.loop.run_until_complete(reader.latest()) == second
        assert store.emission(0).revision == 2

    def test_only_the_last_revisions_are_kept(self, store, published, readers):
        reader, _ = readers
        for revision in (1, 2, 3):
            self.publish(store, published, 0, revision)
        assert self.loop.run_until_complete(reader.window(0, revision=1)) is None
        assert self.loop.run_until_complete(reader.window(0, revision=2)) is not None

    def test_latest_is_the_newest_window_whatever_the_publication_order(
        self, store, published, readers
    ):
        reader, _ = readers
        newest = self.publish(store, published, W, 1)
        self.publish(store, published, 0, 2 - 1)
        assert self.loop.run_until_complete(reader.latest()) == newest
        assert self.loop.run_until_complete(reader.window_starts(10 * W, 0, 10)) == [W, 0]

    def test_index_forgets_windows_older_than_retention_in_event_time(
        self, store, published, readers
    ):
        reader, _ = readers
        self.publish(store, published, 0, 1)
        self.publish(store, published, 7200, 1)
        assert self.loop.run_until_complete(reader.window_starts(10_000, 0, 10)) == [7200]

    def test_final_window_in_the_due_list_is_a_live_window_for_rollups(
        self, store, published, readers
    ):
        _, rollups = readers
        self.apply(store, 0, 0, ["a", "b"])
        self.publish(store, published, 0, 1, final=True)  # sketches not kept yet
        [bucket] = self.loop.run_until_complete(rollups.buckets(0, W, W, 2))
        assert bucket.totals.unique_users == 2 and not bucket.final

    def test_final_window_keeps_one_merged_sketch_of_every_partition(
        self, store, published, readers
    ):
        _, rollups = readers
        self.apply(store, 0, 0, ["a", "b", "c"])
        self.apply(store, 1, 0, ["c", "d"])
        self.publish(store, published, 0, 1, final=True)
        assert store.redis.zrange(store.keys.rollup_due(), 0, -1) == [b"0"]
        assert published.keep_due_sketches(range(2)) == 1
        assert store.redis.zrange(store.keys.rollup_due(), 0, -1) == []
        sync_client = store.redis
        assert sync_client.pfcount(store.keys.rollup_sketches(0)[0]) == 4
        assert not list(sync_client.scan_iter(match=store.keys.scratch("*", 0)[:-2] + "*"))
        raw = sync_client.hget(store.keys.published(0), "rollup")
        assert WindowSummary.decode(raw).events == 5
        [bucket] = self.loop.run_until_complete(rollups.buckets(0, W, W, 2))
        assert bucket.final and bucket.windows == 1 and bucket.totals.unique_users == 4

    def test_bucket_unions_final_and_live_windows_and_sums_counters(
        self, store, published, readers
    ):
        _, rollups = readers
        self.apply(store, 0, 0, ["a", "b"])
        self.publish(store, published, 0, 1, final=True)
        published.keep_due_sketches(range(2))
        self.apply(store, 0, W, ["b", "c"], first=1)  # live: not published yet
        [bucket] = self.loop.run_until_complete(rollups.buckets(0, 2 * W, 2 * W, 2))
        assert bucket.windows == 2 and not bucket.final
        assert bucket.totals.events == 4
        assert bucket.totals.unique_users == 3  # the union, not 2 + 2

    def test_in_progress_window_is_the_newest_unpublished_one(self, store, published, readers):
        _, rollups = readers
        self.apply(store, 0, 0, ["a"])
        self.apply(store, 1, W, ["b", "c"])
        totals = self.loop.run_until_complete(rollups.in_progress(2))
        assert totals.window_start == W and totals.unique_users == 2
        self.publish(store, published, W, 1)
        assert self.loop.run_until_complete(rollups.in_progress(2)) is None

    def test_live_bucket_is_merged_again_once_its_cache_expires(self, store, clients):
        _, async_client = clients
        clock = [0.0]
        rollups = RollupReader(async_client, store.keys, live_cache_s=1.0, clock=lambda: clock[0])
        self.apply(store, 0, 0, ["a", "b"])
        [first] = self.loop.run_until_complete(rollups.buckets(0, W, W, 2))
        self.apply(store, 1, 0, ["c"])
        [cached] = self.loop.run_until_complete(rollups.buckets(0, W, W, 2))
        clock[0] = 1.5
        [fresh] = self.loop.run_until_complete(rollups.buckets(0, W, W, 2))
        assert (first.totals.unique_users, cached.totals.unique_users) == (2, 2)
        assert fresh.totals.unique_users == 3 and fresh.totals.events == 3
