"""Short chaos runs with a real verdict.

Replicas SIGKILLed mid-window, a Redis outage longer than 10 s, poison records in
the stream: every window exact, every planted reject in the DLQ under its reason,
no replica exit that chaos did not cause. A second run keeps its state on the
Redis Cluster, fails a master over and restarts its own broker instead. Each is a
minute of paced replay over six 10 s windows, a kill every ~5 s, then the wait for
the last window's final record (grace + allowed lateness after the stream ends):
about two minutes.
"""

from __future__ import annotations

import pytest

from load import chaos
from services.common import config as cfg

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(300)]

SEED = 20241026


def chaos_config(stack, tmp_path, **settings: str):
    return cfg.load(
        cfg.unique_settings(cfg.SHARED, chaos.SETTINGS),
        environ={
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
            "REDIS_URL": stack.redis_url,
            "CHAOS_WORKDIR": str(tmp_path),
            "CHAOS_WINDOWS": "6",
            "CHAOS_EVENTS": "24000",
            "CHAOS_KILL_EVERY": "5",
            "CHAOS_FINAL_TIMEOUT": "75",
            **settings,
        },
    )


def assert_exact(report: chaos.ChaosReport) -> None:
    assert report.replay is not None and report.replay.ok
    assert len(report.kills) >= 5 and report.restarts == len(report.kills)
    assert report.unexpected_exits == 0
    assert report.fault_failures == []
    assert report.windows is not None
    assert report.windows.missing == [] and report.windows.unexpected == []
    assert report.windows.checked == report.windows.expected == 6
    assert report.windows.mismatches == []
    assert report.honest_events_lost == 0
    assert report.dlq is not None and report.dlq.mismatches == []
    assert report.dlq.distinct == sum(report.dlq.expected.values()) > 0
    assert report.ok


def test_kills_a_redis_outage_and_poison_records_cost_no_event_and_no_replica(stack, tmp_path):
    config = chaos_config(
        stack, tmp_path, CHAOS_REDIS="outage", CHAOS_REDIS_OUTAGE_SECONDS="11", CHAOS_POISON="true"
    )
    report = chaos.run_local(config, seed=SEED)
    chaos.print_verdict(report, seed=SEED)

    assert report.redis_restarts.startswith("1 outage, down ")
    assert float(report.redis_restarts.split()[3]) >= 11
    # Every hostile kind the processor must survive is in the stream and in the DLQ.
    for reason in ("undecodable", "invalid_value", "future_timestamp", "too_large"):
        assert report.dlq is not None and report.dlq.found.get(reason, 0) > 0, reason
    assert_exact(report)


def test_a_broker_restart_and_a_redis_cluster_failover_cost_no_event_and_no_replica(
    stack, redis_cluster, tmp_path
):
    """The state on the Redis Cluster: its emission-slot master fails over at a third of
    the replay, the run's own broker restarts at two thirds."""
    config = chaos_config(
        stack,
        tmp_path,
        CHAOS_BROKER="restart",
        CHAOS_REDIS="failover",
        REDIS_URL=redis_cluster.url,
        REDIS_CLUSTER="true",
    )
    report = chaos.run_local(config, seed=SEED + 1)
    chaos.print_verdict(report, seed=SEED + 1)

    assert report.broker_restarts.startswith("1, down ")
    assert report.redis_restarts.startswith("1 failover, ")
    assert_exact(report)
