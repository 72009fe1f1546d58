from __future__ import annotations

import fakeredis
import fakeredis.aioredis
import pytest

from statestore.sketches import top_kept
from tests.published_contract import PublishedContract


class TestPublishedOnFakeRedis(PublishedContract):
    @pytest.fixture
    def clients(self):
        server = fakeredis.FakeServer()
        return fakeredis.FakeRedis(server=server), fakeredis.aioredis.FakeRedis(server=server)


def test_top_kept_states_the_floor_of_what_it_left_out():
    kept, floor = top_kept({"a": 5, "b": 3, "c": 2}, kept=2)
    assert kept == {"a": 5, "b": 3} and floor == 3
    assert top_kept({"a": 1}, kept=2) == ({"a": 1}, 0)
