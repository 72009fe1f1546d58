from __future__ import annotations

from services.processor.watermark import stream_time
from statestore import PartitionState

NOW = 1_800_000_000_000
IDLE_MS, STALE_MS = 30_000, 5_000


def state(p, watermark=None, applied=None, caught_up=None):
    return PartitionState(
        p, fence=1, watermark=watermark, applied_at_ms=applied, caught_up_at_ms=caught_up
    )


def test_watermark_is_the_slowest_active_partition():
    states = {0: state(0, 100.0, NOW), 1: state(1, 90.0, NOW)}
    assert stream_time(states, NOW, IDLE_MS, STALE_MS).watermark == 90.0


def test_a_partition_without_watermark_holds_everything():
    states = {0: state(0, 100.0, NOW), 1: state(1)}
    assert stream_time(states, NOW, IDLE_MS, STALE_MS).watermark is None


def test_caught_up_quiet_partition_is_idle_and_left_out():
    quiet = state(1, 50.0, applied=NOW - IDLE_MS, caught_up=NOW - 100)
    stream = stream_time({0: state(0, 100.0, NOW), 1: quiet}, NOW, IDLE_MS, STALE_MS)
    assert stream.idle == {1} and stream.watermark == 100.0


def test_quiet_partition_whose_owner_stopped_heartbeating_is_not_idle():
    orphan = state(1, 50.0, applied=NOW - IDLE_MS, caught_up=NOW - STALE_MS - 1)
    stream = stream_time({0: state(0, 100.0, NOW), 1: orphan}, NOW, IDLE_MS, STALE_MS)
    assert stream.idle == set() and stream.watermark == 50.0


def test_lagging_partition_is_not_idle_even_if_quiet():
    stuck = state(1, 50.0, applied=NOW - IDLE_MS, caught_up=NOW - IDLE_MS - 1)
    assert stream_time({1: stuck}, NOW, IDLE_MS, STALE_MS).idle == set()


def test_all_idle_lets_wall_clock_drive_the_watermark():
    states = {p: state(p, 100.0, applied=NOW - IDLE_MS, caught_up=NOW) for p in range(3)}
    assert stream_time(states, NOW, IDLE_MS, STALE_MS).watermark == NOW / 1000
    empty = {p: state(p, caught_up=NOW) for p in range(3)}
    assert stream_time(empty, NOW, IDLE_MS, STALE_MS).watermark == NOW / 1000
