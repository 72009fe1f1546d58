"""A short chaos run with a real verdict: replicas SIGKILLed mid-window lose and double nothing.

About 90 seconds: a minute of paced replay over six 10 s windows while a random
replica of three is killed every ~5 s and restarted, then the wait for the last
window's final record (grace + allowed lateness after the stream ends).
"""

from __future__ import annotations

import pytest

from load import chaos
from services.common import config as cfg

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]


def test_killed_replicas_mid_window_count_every_event_once(stack, tmp_path):
    config = cfg.load(
        cfg.unique_settings(cfg.SHARED, chaos.SETTINGS),
        environ={
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
            "REDIS_URL": stack.redis_url,
            "CHAOS_WORKDIR": str(tmp_path),
            "CHAOS_WINDOWS": "6",
            "CHAOS_EVENTS": "24000",
            "CHAOS_KILL_EVERY": "5",
            "CHAOS_FINAL_TIMEOUT": "75",
            "CHAOS_REDIS": "shared",
        },
    )
    report = chaos.run_local(config, seed=20241026)
    chaos.print_verdict(report, seed=20241026)

    assert report.replay is not None and report.replay.ok
    assert len(report.kills) >= 5 and report.restarts == len(report.kills)
    assert report.windows is not None
    assert report.windows.missing == [] and report.windows.unexpected == []
    assert report.windows.checked == report.windows.expected == 6
    assert report.windows.mismatches == []
    assert report.dlq is not None and report.dlq.mismatches == []
    assert report.dlq.distinct == sum(report.dlq.expected.values()) > 0
    assert report.ok
