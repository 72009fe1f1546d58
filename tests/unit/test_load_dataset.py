"""The dataset file keeps every key and value byte for byte, whatever they hold."""

from __future__ import annotations

import gzip
import json

import msgspec

from load import dataset
from load.dataset import Record
from load.replay import Pacing, shift_for_now, shift_value
from services.common.schema import decode_event

ODD_VALUES = [
    b'{"event_id":"e1","n":1}',  # embedded verbatim
    b'{"spaced" : [1, 2 ,3]}',  # odd spacing survives embedding
    b' {"leading":"space"}',  # surrounding whitespace: kept as a string
    b'{"multi":\n"line"}',  # a newline would break the line: kept as a string
    b"",  # empty value
    None,  # null value
    b"not json at all",
    b'{"truncated": "rec',
    b"\xff\xfe\x00binary\x9c",  # not UTF-8: base64
    "caf\u00e9 \u2603".encode(),  # UTF-8 text that is not JSON
    b'"just a string"',
    b"12345",
]


def test_every_odd_value_and_key_round_trips_byte_for_byte(tmp_path):
    records = [
        Record(key, value, None, float(n), "not_json")
        for n, value in enumerate(ODD_VALUES)
        for key in (b"user_1", None, b"\x00\xff")
    ]
    path = tmp_path / "odd.jsonl.gz"
    assert dataset.write(path, records) == len(records)
    back = dataset.read(path)
    assert [(r.key, r.value, r.arrival, r.kind) for r in back] == [
        (r.key, r.value, r.arrival, r.kind) for r in records
    ]
    columns = [c for c in dataset.read_columns(path)]
    values = [v for c in columns for v in c.values]
    keys = [k for c in columns for k in c.keys]
    assert [None if v is None else bytes(v) for v in values] == [r.value for r in records]
    assert [k.encode() if isinstance(k, str) else k for k in keys] == [r.key for r in records]


def test_json_values_are_embedded_readably(tmp_path):
    path = tmp_path / "e.jsonl.gz"
    dataset.write(path, [Record(b"u", b'{"a":1}', 5.0, 6.0, "valid")])
    (line,) = gzip.decompress(path.read_bytes()).splitlines()
    assert json.loads(line) == {"at": 6.0, "k": "u", "e": {"a": 1}, "t": 5.0, "kind": "valid"}


def test_truth_file_sits_next_to_the_dataset(tmp_path):
    assert dataset.truth_path(tmp_path / "x.jsonl.gz") == tmp_path / "x.truth.json"


def test_shift_moves_valid_events_by_whole_windows_and_leaves_bad_records_alone():
    from load.generate import Plan, generate

    plan = Plan(
        events=500,
        windows=2,
        window_seconds=10,
        grace_seconds=2,
        allowed_lateness_seconds=20,
        users=20,
        seed=1,
        malformed=0.1,
    )
    records = list(generate(plan))
    shift = shift_for_now(records[0].arrival, 10, now=records[0].arrival + 12345.6)
    assert shift == 12340
    for record in records:
        moved = shift_value(msgspec.Raw(record.value), record.kind, shift)
        if record.kind in ("valid", "out_of_order", "late", "too_late"):
            before, after = decode_event(record.value), decode_event(bytes(moved))
            assert after.timestamp.timestamp() - before.timestamp.timestamp() == shift
            assert msgspec.structs.replace(after, timestamp=before.timestamp) == before
        else:
            assert bytes(moved) == record.value


def test_pacing_is_one_of_rate_speed_or_none():
    assert not Pacing().paced and Pacing().describe() == "max speed"
    assert Pacing(rate=1000).describe() == "1000 events/s"
    assert Pacing(speed=2).describe() == "x2 original pacing"
    try:
        Pacing(rate=1, speed=1)
    except ValueError:
        pass
    else:
        raise AssertionError("a rate and a speed together must be refused")
