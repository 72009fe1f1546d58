from __future__ import annotations

from services.processor.watermark import stream_time
from statestore import PartitionState

NOW = 1_800_000_000_000
IDLE_MS = 30_000
LOG_END = 100  # every partition's current end offset in these tests


def state(p, watermark_s=None, applied=None, read_to=None):
    return PartitionState(
        p,
        fence=LOG_END - 1,
        watermark_s=watermark_s,
        applied_at_ms=applied,
        caught_up_offset=read_to,
    )


def log_end(_partition):
    return LOG_END


def stream(states, end=log_end):
    return stream_time(states, NOW, IDLE_MS, end)


def test_watermark_is_the_slowest_active_partition():
    states = {0: state(0, 100.0, NOW), 1: state(1, 90.0, NOW)}
    assert stream(states).watermark_s == stream(states).final_watermark_s == 90.0


def test_a_partition_without_watermark_holds_everything():
    states = {0: state(0, 100.0, NOW), 1: state(1)}
    assert stream(states).watermark_s is None


def test_quiet_partition_read_to_its_end_is_idle_and_left_out():
    quiet = state(1, 50.0, applied=NOW - IDLE_MS, read_to=LOG_END)
    result = stream({0: state(0, 100.0, NOW), 1: quiet})
    assert result.idle == {1} and result.watermark_s == 100.0


def test_records_waiting_in_kafka_keep_a_partition_active_whatever_its_last_report():
    # Its owner once read to offset 100, but the log has grown since: not idle.
    behind = state(1, 50.0, applied=NOW - IDLE_MS, read_to=LOG_END)
    result = stream({0: state(0, 100.0, NOW), 1: behind}, end=lambda _p: LOG_END + 5)
    assert result.idle == set() and result.watermark_s == 50.0


def test_partition_nobody_read_to_the_end_is_not_idle():
    unread = state(1, 50.0, applied=NOW - IDLE_MS, read_to=None)
    assert stream({0: state(0, 100.0, NOW), 1: unread}).idle == set()


def test_recently_applied_partition_is_not_idle_yet():
    busy = state(1, 50.0, applied=NOW - IDLE_MS + 1, read_to=LOG_END)
    assert stream({1: busy}).idle == set()


def test_log_ends_are_asked_only_for_quiet_partitions():
    asked = []
    states = {0: state(0, 100.0, NOW, read_to=LOG_END), 1: state(1, 90.0, NOW, read_to=LOG_END)}
    stream(states, end=lambda p: asked.append(p) or LOG_END)
    assert asked == []


def test_all_idle_closes_by_wall_clock_but_seals_only_by_quiet_event_time():
    # A replay of old data (event time far behind wall clock) pauses for 40 s.
    quiet_for_ms = 40_000
    states = {
        p: state(p, 1_000.0 + p, applied=NOW - quiet_for_ms, read_to=LOG_END) for p in range(3)
    }
    result = stream(states)
    assert result.watermark_s == NOW / 1000  # windows close, so the last ones publish
    assert result.final_watermark_s == 1_002.0 + 40  # sealing moves with the quiet time only


def test_all_idle_live_stream_seals_near_wall_clock():
    states = {p: state(p, NOW / 1000 - 31, applied=NOW - 31_000, read_to=LOG_END) for p in range(2)}
    assert stream(states).final_watermark_s == NOW / 1000


def test_empty_topic_closes_nothing_and_seals_nothing():
    states = {p: state(p, read_to=0) for p in range(3)}
    result = stream(states, end=lambda _p: 0)
    assert result.watermark_s == NOW / 1000 and result.final_watermark_s is None
