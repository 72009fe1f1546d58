"""The web view in a real headless browser (Debian's chromium) against a running API.

The test seeds Redis through the real store code (load.api_bench.seed_windows),
lets chromium run the page's JavaScript, and compares the rendered DOM with
what the API answers. Its screenshot is kept at .local/screenshots/api-web-view.png
(and in the test's tmp dir).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from load.api_bench import WINDOW_S, seed_windows
from load.api_server import ApiServer
from statestore import StateStore
from statestore.published import PublishedStore

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parents[2] / ".local" / "screenshots" / "api-web-view.png"
BROWSER_BUDGET_MS = "15000"  # virtual time: the page's fetches finish well within it


@pytest.fixture
def seeded_api(stack, tmp_path):
    namespace, topic = f"browser-{uuid.uuid4().hex[:8]}", "browser-events"
    store = StateStore.from_url(stack.redis_url, namespace, topic, ttl_s=3600)
    current = int(time.time()) // WINDOW_S * WINDOW_S
    starts = [current - WINDOW_S * i for i in range(36, 0, -1)]  # the last three hours
    seed_windows(store, PublishedStore(store), starts, 600, 2000, in_progress=current)
    environ = {"REDIS_URL": stack.redis_url, "STATE_NAMESPACE": namespace, "EVENTS_TOPIC": topic}
    server = ApiServer(environ, tmp_path / "api.log").start(probe="/readyz")
    yield server
    server.stop()
    store.reset()


def chromium(tmp_path: Path, *args: str) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--virtual-time-budget={BROWSER_BUDGET_MS}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def value_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*data-value="([^"]*)"[^>]*>([^<]*)<', dom)
    assert match, f"#{element_id} not rendered with a value"
    return match.group(1), match.group(2)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_web_view_renders_the_numbers_the_api_answers(seeded_api, tmp_path):
    _, latest = seeded_api.get("/v1/windows/latest")
    _, current = seeded_api.get("/v1/windows/current")
    _, rollup = seeded_api.get("/v1/rollups?resolution=1h")

    dom = chromium(tmp_path, "--dump-dom", seeded_api.url + "/")

    assert 'data-loaded="true"' in dom, dom[-2000:]
    for element_id, figure in (
        ("latest-total", latest["total_events"]),
        ("latest-users", latest["unique_users"]),
        ("latest-sessions", latest["unique_sessions"]),
        ("current-total", current["total_events"]),
        ("current-users", current["unique_users"]),
    ):
        assert value_of(dom, element_id) == (str(figure), f"{figure:,}"), element_id
    assert latest["window_start"] in dom
    top_page = next(iter(latest["top_pages"]))
    assert f">{top_page}<" in dom
    points = re.search(r'id="rollup-chart"[^>]*data-points="(\d+)"', dom)
    assert points and int(points.group(1)) == len(rollup["buckets"])
    newest = rollup["buckets"][-1]
    bucket_row = re.search(r'<tr class="bucket">(.*?)</tr>', dom).group(1)
    assert newest["window_start"] in bucket_row
    assert f'data-value="{newest["total_events"]}"' in bucket_row
    assert f'data-value="{newest["unique_users"]}"' in bucket_row

    shot = tmp_path / "api-web-view.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1500", seeded_api.url + "/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
