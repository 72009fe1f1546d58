"""The private Redis of a chaos run: launched by deploy/local/redis.sh, killed, reloaded."""

from __future__ import annotations

import shutil

import pytest
import redis

from load.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_a_private_redis_keeps_acknowledged_writes_across_sigkill(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("fence", 41)
        first_pid = server.process.pid
        # Redis writes the AOF before it replies, so a SIGKILL (not a host crash) keeps it.
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": str(server.port)}
        client.close()
        server.restart()
        assert server.process.pid != first_pid and server.restarts == 1
        client = redis.Redis.from_url(server.url)
        assert client.get("fence") == b"41"
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "redis" / "redis.log").is_file()
    assert (tmp_path / "redis" / "data").is_dir()
