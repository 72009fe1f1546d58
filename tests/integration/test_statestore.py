from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from services.common import config as cfg
from statestore import StateStore
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


# Every character that would end a URL's userinfo or host part early.
URL_HOSTILE_PASSWORD = "p@ss/w#rd:?%&"


@pytest.fixture
def redis_with_password(tmp_path):
    """A private redis-server that requires URL_HOSTILE_PASSWORD; yields its URL."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""),
            *("--dir", str(tmp_path), "--requirepass", URL_HOSTILE_PASSWORD),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, password=URL_HOSTILE_PASSWORD, socket_timeout=1)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
    client.close()
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_store_from_config_authenticates_with_a_password_a_url_could_not_carry(
    redis_with_password,
):
    config = cfg.load(
        cfg.SHARED,
        environ={"REDIS_URL": redis_with_password, "REDIS_PASSWORD": URL_HOSTILE_PASSWORD},
    )
    store = StateStore.from_url(config.redis_url, "auth", "events", **cfg.redis_options(config))
    store.record_topology(3, 60)
    assert store.redis.ping()
    without = StateStore.from_url(config.redis_url, "auth", "events")
    with pytest.raises(redis.AuthenticationError):
        without.redis.ping()
    wrong = StateStore.from_url(config.redis_url, "auth", "events", password="wrong")
    with pytest.raises(redis.AuthenticationError):
        wrong.redis.ping()
