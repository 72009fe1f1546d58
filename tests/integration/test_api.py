"""The HTTP API on the real broker, Redis and a running `clickstream api`."""

from __future__ import annotations

import time
from collections import Counter

import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from load.api_server import ApiServer
from load.ports import free_port
from services.common.window_record import iso_utc
from statestore import StateStore
from tests.integration.harness import (
    WINDOW_S,
    Replicas,
    all_final,
    dataset,
    expected_windows,
    produce,
    read_windows,
)
from tests.published_contract import PublishedContract

pytestmark = pytest.mark.integration


class TestPublishedOnRedis(PublishedContract):
    @pytest.fixture
    def clients(self, stack):
        sync_client = redis.Redis.from_url(stack.redis_url)
        yield sync_client, aioredis.Redis.from_url(stack.redis_url)
        sync_client.close()


# -- the service, against the real pipeline ------------------------------------------

PAST = 1_767_225_600  # 2026-01-01T00:00:00Z: replayed history, far behind wall clock
HLL_TOLERANCE = 0.02


@pytest.fixture
def api(pipeline, tmp_path):
    servers = []

    def start(token: str = "", probe: str = "/readyz", **environ: str) -> ApiServer:
        server = ApiServer({**pipeline.environ, **environ}, tmp_path / "api.log", token)
        servers.append(server)
        return server.start(probe=probe)

    yield start
    for server in servers:
        server.stop()


def record_dict(record) -> dict:
    return msgspec.structs.asdict(record)


def page_through(server: ApiServer, query: str) -> list[dict]:
    windows, cursor = [], ""
    for _ in range(100):
        status, body = server.get(f"/v1/windows?{query}&cursor={cursor}")
        assert status == 200, body
        windows += body["windows"]
        if body["next_cursor"] is None:
            return windows
        cursor = body["next_cursor"]
    raise AssertionError("pagination did not end")


def test_published_windows_and_hourly_rollup_answer_from_redis(pipeline, api, tmp_path):
    # 300 users over six windows: most users come back in several windows.
    events = dataset(seed=11, start=PAST, seconds=6 * WINDOW_S, events=12_000, users=300)
    config = pipeline.config()
    produce(config, events)
    expected = expected_windows(events)
    replicas = Replicas(pipeline.environ, tmp_path)
    replicas.start_all(1)
    try:
        published = read_windows(config, all_final(expected))
    finally:
        assert replicas.stop_all() == [0], replicas.logs()
    server = api()

    for start in expected:
        status, body = server.get(f"/v1/windows/{start}")
        assert status == 200 and body == record_dict(published.last(start)), start
        first = published.records[start][0]
        status, body = server.get(f"/v1/windows/{start}?revision={first.revision}")
        assert status == 200 and body == record_dict(first), start
    newest = max(expected)
    assert server.get("/v1/windows/latest") == (200, record_dict(published.last(newest)))
    listed = page_through(server, f"from={PAST}&to={PAST + 3600}&limit=4")
    assert [w["window_start"] for w in listed] == sorted(expected, reverse=True)
    assert listed == [record_dict(published.last(w["window_start"])) for w in listed]

    status, body = server.get(f"/v1/rollups?resolution=1h&from={PAST}&to={PAST + 3600}")
    assert status == 200, body
    [hour] = body["buckets"]
    finals = [published.final(start) for start in expected]
    assert hour["windows"] == len(expected) and hour["final"]
    assert hour["total_events"] == sum(r.total_events for r in finals) == len(events)
    truth = len({event.user_id for event in events})
    assert abs(hour["unique_users"] - truth) <= truth * HLL_TOLERANCE
    assert hour["unique_users"] != sum(r.unique_users for r in finals)
    sessions = len({event.session_id for event in events})
    assert abs(hour["unique_sessions"] - sessions) <= max(2, sessions * HLL_TOLERANCE)
    for name in ("event_types", "devices", "countries"):
        summed = Counter()
        for record in finals:
            summed.update(getattr(record, name))
        assert hour[name] == dict(summed), name
    assert hour["top_pages_max_undercount"] == 0  # every page of every window was kept


def test_window_in_progress_is_live_partial_and_in_rollups(pipeline, api, tmp_path):
    # A day-long window that is still open while the test runs.
    day = 86400
    now = time.time()
    if now % day > day - 120:
        pytest.skip("too close to midnight UTC for a day window to stay open")
    events = dataset(seed=12, start=now - 30, seconds=20, events=3_000, users=200)
    produce(pipeline.config(), events)
    replicas = Replicas(pipeline.environ, tmp_path, WINDOW_SECONDS=str(day))
    replicas.start_all(1)
    try:
        server = api()
        deadline = time.monotonic() + 60
        body = {}
        while time.monotonic() < deadline:
            status, body = server.get("/v1/windows/current")
            if status == 200 and body["total_events"] == len(events):
                break
            time.sleep(0.2)  # polling the processor's progress, bounded by the deadline
        assert body.get("total_events") == len(events), body
        assert body["partial"] and body["revision"] == 0 and not body["final"]
        assert body["window_start"] == iso_utc(now // day * day)
        assert 0 < body["progress"]["fraction"] <= 1
        truth = len({event.user_id for event in events})
        assert abs(body["unique_users"] - truth) <= max(2, truth * HLL_TOLERANCE)
        assert server.get("/v1/windows/latest")[0] == 404
        status, rollup = server.get("/v1/rollups?resolution=1d")
        assert status == 200
        [bucket] = rollup["buckets"]
        assert bucket["total_events"] == len(events) and not bucket["final"]
        assert bucket["unique_users"] == body["unique_users"]
    finally:
        assert replicas.stop_all() == [0], replicas.logs()


def test_every_error_answers_with_its_documented_status(pipeline, api):
    StateStore.from_url(pipeline.stack.redis_url, *namespace_and_topic(pipeline)).record_topology(
        6, 300
    )
    server = api()
    refused = {
        "/v1/windows?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z": "from must be before",
        "/v1/windows?from=0&to=99999999": "range too long",
        "/v1/windows?from=2026-01-01T00:00:00": "needs a zone",
        "/v1/windows?limit=0": "limit",
        "/v1/windows?cursor=abc": "cursor",
        "/v1/rollups?resolution=1w": "resolution",
        "/v1/rollups?resolution=7m": "multiple of the window size",
        "/v1/rollups?resolution=5m&from=0&to=691200": "too many buckets",
        "/v1/windows/yesterday": "window_start",
        "/v1/windows/1767225600?revision=0": "revision",
    }
    for path, message in refused.items():
        status, body = server.get(path)
        assert status == 400 and message in body["error"], (path, body)
    assert server.get("/v1/windows/1767225600")[0] == 404
    assert server.get("/v1/windows/latest")[0] == 404
    assert server.get("/v1/nothing")[0] == 404

    guarded = api(token="s3cret")
    assert guarded.get("/v1/windows/latest", token="")[0] == 401
    assert guarded.get("/v1/windows/latest", token="wrong")[0] == 401
    assert guarded.get("/metrics", token="")[0] == 401
    assert guarded.get("/v1/windows/latest")[0] == 404  # the right token passes
    assert guarded.get("/healthz", token="")[0] == 200
    assert guarded.get("/readyz", token="")[0] == 200

    dead = api(probe="/healthz", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    for path in ("/readyz", "/v1/windows/latest", "/v1/rollups", "/v1/windows/current"):
        status, body = dead.get(path)
        assert status == 503, (path, body)
        assert "redis" not in body["error"].lower() and "cs:{" not in body["error"]
    assert dead.get("/healthz")[0] == 200


def namespace_and_topic(pipeline) -> tuple[str, str]:
    return pipeline.environ["STATE_NAMESPACE"], pipeline.environ["EVENTS_TOPIC"]
