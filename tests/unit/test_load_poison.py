"""Poison records of a chaos dataset: each gets exactly the DLQ reason its truth expects."""

from __future__ import annotations

from collections import Counter

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from load import poison, truth
from load.chaos import ChaosReport, verdict_rows
from load.dataset import VALID
from load.generate import Plan, generate
from load.replay import shift_value
from load.verdict import WindowsVerdict, compare_dlq, honest_events_lost
from services.common.window_record import iso_utc
from services.processor.decode import decode

W = 10
PLAN = Plan(
    events=6000,
    windows=3,
    window_seconds=W,
    grace_seconds=2,
    allowed_lateness_seconds=20,
    users=200,
    seed=7,
    out_of_order=0,
    late=0,
    too_late=0,
    malformed=0,
    poison=0.05,
)


def _message(record, offset: int) -> Message:
    # The record timestamp a replay gives it: its arrival (no shift here).
    return Message(
        topic="events",
        partition=0,
        offset=offset,
        key=record.key,
        value=record.value,
        timestamp=(TIMESTAMP_CREATE_TIME, int(record.arrival * 1000)),
    )


def test_every_poison_kind_is_rejected_with_the_reason_the_truth_expects():
    records = list(generate(PLAN))
    planted = [record for record in records if record.kind in poison.POISON_REASONS]
    assert {record.kind for record in planted} == set(poison.POISON_REASONS)
    decoded = decode([_message(record, offset) for offset, record in enumerate(planted)])
    [batch] = decoded.batches
    assert batch.events == []
    got = Counter(reject.reason for reject in batch.rejects)
    assert got == Counter(poison.POISON_REASONS[record.kind] for record in planted)
    assert got == Counter(truth.ground_truth(planted, W)["dlq"])


def test_honest_events_with_control_characters_decode_and_count():
    records = [record for record in generate(PLAN) if record.kind == VALID]
    odd = [record for record in records if any(ord(c) < 32 for c in record.value.decode())]
    assert not odd  # JSON escapes them: the raw value holds no control byte
    with_control = [
        record
        for record in records
        if b"\\u0000" in record.value or b"\\u001b" in record.value or b"\\u0007" in record.value
    ]
    assert with_control
    [batch] = decode(
        [_message(record, offset) for offset, record in enumerate(with_control)]
    ).batches
    assert batch.rejects == [] and len(batch.events) == len(with_control)


def test_a_replayed_clock_ahead_event_stays_ahead_of_its_record_timestamp():
    record = next(r for r in generate(PLAN) if r.kind == poison.CLOCK_AHEAD)
    shift = 100 * W
    moved = shift_value(record.value, record.kind, shift)
    replayed = Message(
        topic="events",
        partition=0,
        offset=0,
        key=record.key,
        value=bytes(moved),
        timestamp=(TIMESTAMP_CREATE_TIME, int((record.arrival + shift) * 1000)),
    )
    [batch] = decode([replayed]).batches
    assert [reject.reason for reject in batch.rejects] == ["future_timestamp"]


def _truth(totals: dict[int, int]) -> dict:
    return {
        "windows": {
            iso_utc(start): {"window_start": iso_utc(start), "total_events": total}
            for start, total in totals.items()
        }
    }


class _Final:
    def __init__(self, start: int, total: int, revision: int = 1):
        self.window_start = iso_utc(start)
        self.total_events = total
        self.revision = revision
        self.final = True


def test_honest_events_lost_counts_shortfalls_and_missing_windows_but_not_misrouted_ones():
    expected = _truth({0: 100, 10: 50, 20: 30})
    records = [_Final(0, 90), _Final(0, 100, revision=2), _Final(10, 45)]
    assert honest_events_lost(expected, records, compare_dlq({}, [])) == 5 + 30
    misrouted = compare_dlq({"not_json": 1}, [])
    misrouted.found = {"not_json": 1, "too_late": 3}  # three honest events in the DLQ
    assert honest_events_lost(expected, records, misrouted) == 32


def test_verdict_fails_on_a_replica_exit_not_caused_by_chaos_and_shows_dlq_reasons():
    report = ChaosReport("local", 3)
    report.windows = WindowsVerdict(expected=1, checked=1)
    report.dlq = compare_dlq({"undecodable": 2}, [])
    report.honest_events_lost = 0
    report.unexpected_exits = 1
    rows = dict(verdict_rows(report))
    assert rows["replica exits not caused by chaos"] == "1"
    assert rows["honest events lost"] == "0"
    assert rows["  DLQ undecodable"] == "0 (expected 2)"
    assert rows["verdict"] == "FAIL"


def test_a_poisoned_dataset_file_keeps_every_value_byte_for_byte(tmp_path):
    from load import dataset

    records = list(generate(PLAN))
    path = tmp_path / "poisoned.jsonl.gz"
    dataset.write(path, iter(records))
    read = [record for chunk in dataset.read_chunks(path) for record in chunk]
    assert [(r.key, r.value, r.kind) for r in read] == [(r.key, r.value, r.kind) for r in records]


class _FakeRedis:
    port = 0
    restarts = 0

    def outage(self, seconds: float) -> None:
        self.restarts += 1


def test_a_timed_fault_counts_from_the_replay_start_and_one_never_due_fails_the_run():
    from load import chaos
    from load.chaos.faults import InfrastructureFaults
    from services.common import config as cfg

    config = cfg.load(
        cfg.unique_settings(cfg.SHARED, chaos.SETTINGS),
        environ={"CHAOS_REDIS": "outage", "CHAOS_WINDOWS": "60", "CHAOS_WINDOW_SECONDS": "60"},
    )
    report = ChaosReport("local", 3)
    faults = InfrastructureFaults(config, report, _FakeRedis(), None)
    faults.tick()  # the replay starts: the outage is due 20 minutes later
    faults.finish()
    assert faults.threads == []
    assert report.fault_failures == ["redis: the run ended before it was due"]
    assert dict(verdict_rows(report))["verdict"] == "FAIL"
