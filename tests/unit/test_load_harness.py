"""The chaos harness' own parts: metrics parsing, recovery timing, kill and restart."""

from __future__ import annotations

import sys
import time

from prometheus_client import CollectorRegistry, Counter, generate_latest

from load.chaos import ChaosReport, verdict_rows
from load.harness import Kill, ProgressLog, Replica, applied_by_partition
from load.ports import free_port
from load.verdict import compare_dlq


def test_applied_events_are_read_per_partition_from_a_real_metrics_page():
    registry = CollectorRegistry()
    applied = Counter("clickstream_events_applied", "applied", ["partition"], registry=registry)
    applied.labels("0").inc(5)
    applied.labels("3").inc(7)
    page = generate_latest(registry).decode()
    assert applied_by_partition(page) == {0: 5.0, 3: 7.0}
    assert applied_by_partition("") == {}


def test_recovery_is_the_time_until_every_partition_of_the_victim_moves_elsewhere():
    progress = ProgressLog()
    progress.observe(pid=10, at=1.0, applied={0: 5, 1: 5})
    progress.observe(pid=20, at=1.0, applied={2: 5})
    progress.observe(pid=10, at=2.0, applied={0: 9, 1: 6})
    progress.observe(pid=20, at=2.0, applied={2: 6})
    assert progress.partitions_of(10, since=1.5) == frozenset({0, 1})
    kill = Kill(slot=0, pid=10, at=2.5, partitions=progress.partitions_of(10, since=1.5))
    progress.observe(pid=20, at=4.0, applied={2: 7, 0: 1})  # survivor took partition 0
    assert progress.recovery_seconds(kill) == float("inf")  # partition 1 still waits
    progress.observe(pid=30, at=9.0, applied={1: 2})  # the restarted replica took 1
    assert progress.recovery_seconds(kill) == 9.0 - 2.5
    assert progress.recovery_seconds(Kill(0, 99, 1.0, frozenset())) is None


def test_a_counter_that_does_not_move_is_not_progress():
    progress = ProgressLog()
    progress.observe(pid=1, at=1.0, applied={0: 3})
    progress.observe(pid=1, at=2.0, applied={0: 3})
    assert progress.partitions_of(1, since=1.5) == frozenset()


def _wait_for_lines(replica: Replica, count: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = replica.log_path.read_text().count("up")
        if lines >= count:
            return lines
        time.sleep(0.05)
    return replica.log_path.read_text().count("up")


def test_a_replica_is_killed_with_sigkill_and_restarts_in_its_slot(tmp_path):
    command = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    replica = Replica(0, command, {}, free_port(), tmp_path / "replica.log")
    replica.start()
    first = replica.pid
    assert _wait_for_lines(replica, 1) == 1 and replica.alive()
    replica.kill()
    assert not replica.alive() and replica.process.returncode == -9
    replica.start()
    assert replica.alive() and replica.pid != first and replica.starts == 2
    assert _wait_for_lines(replica, 2) == 2  # both lives log to the slot's one file
    replica.stop()
    assert not replica.alive() and replica.process.returncode == -15


def test_verdict_rows_fail_on_a_dlq_mismatch():
    report = ChaosReport("local", 3)
    report.dlq = compare_dlq({"not_json": 1}, [])
    rows = dict(verdict_rows(report))
    assert rows["verdict"] == "FAIL"
    assert rows["DLQ mismatches"] == "1"


def test_processor_env_carries_the_connection_and_lets_settings_win():
    from load.fleet import processor_env
    from services.common import config as cfg

    config = cfg.load(
        cfg.SHARED,
        environ={"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "EVENTS_TOPIC": "run-events"},
    )
    env = processor_env(config, STATE_NAMESPACE="run", METRICS_PORT=9200, WINDOW_SECONDS=10)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["EVENTS_TOPIC"] == "run-events" and env["REDIS_URL"] == config.redis_url
    assert env["METRICS_PORT"] == "9200" and env["WINDOW_SECONDS"] == "10"
    assert env["LOG_FORMAT"] == "json" and env["STATE_NAMESPACE"] == "run"
    assert all(isinstance(value, str) for value in env.values())
