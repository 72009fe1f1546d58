"""The HTTP API on the real broker, Redis and a running `clickstream api`."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis

from tests.published_contract import PublishedContract

pytestmark = pytest.mark.integration


class TestPublishedOnRedis(PublishedContract):
    @pytest.fixture
    def clients(self, stack):
        sync_client = redis.Redis.from_url(stack.redis_url)
        yield sync_client, aioredis.Redis.from_url(stack.redis_url)
        sync_client.close()
