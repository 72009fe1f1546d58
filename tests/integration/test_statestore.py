from __future__ import annotations

import pytest
import redis

from tests.statestore_contract import StateStoreContract

pytestmark = pytest.mark.integration


class TestStateStoreOnRedis(StateStoreContract):
    @pytest.fixture
    def client(self, stack):
        client = redis.Redis.from_url(stack.redis_url)
        yield client
        client.close()

    def test_unique_counts_are_real_hyperloglogs(self, store, client):
        from tests.statestore_contract import delta

        users = [f"user-{n}" for n in range(20_000)]
        store.apply_batch(0, -1, 0, 0, [delta(0, users=users[:12_000])], None, {}, 1)
        store.apply_batch(1, -1, 0, 0, [delta(0, users=users[8_000:])], None, {}, 1)
        assert client.type(store.keys.window(0, 0)[1]) == b"string"  # an HLL, not a set
        unique = store.read_window(0, [0, 1]).unique_users
        assert abs(unique - 20_000) <= 20_000 * 0.02
