"""What the dashboard admits from the metrics topic, and how it shows names from strangers."""

from __future__ import annotations

import json
import random
import unicodedata
from collections import Counter

import msgspec
import pytest
from rich.console import Console

from services.common.window_record import (
    MAX_ENTRIES,
    WindowRecord,
    build_record,
    encode_record,
    parse_iso,
)
from services.consumer.dashboard import DashboardState, render
from services.consumer.sanitize import (
    FUTURE_WINDOW,
    INVALID_REASONS,
    INVALID_VALUE,
    INVALID_WINDOW,
    MAX_RECORD_BYTES,
    MISSING_FIELD,
    NOT_JSON,
    TOO_LARGE,
    WRONG_TYPE,
    Invalid,
    admit,
    json_line,
    printable,
)
from services.consumer.text import render_block
from services.consumer.windows import WindowBook
from statestore import WindowTotals
from tests.unit.test_dashboard_windows import window

NOW = parse_iso("2024-10-26T11:12:30Z")
BOUND = 600

HOSTILE_NAMES = {
    "/clear\x1b[2J\x1b[31mred": 50,
    "/csi\x9b31m": 40,
    "/bidi\u202eevil\u2066": 30,
    "[bold red]markup[/]": 20,
    "/line\u2028break\nnext": 10,
}
UNSAFE = {"\x1b", "\x9b", "\u202e", "\u2066", "\u2028", "\n"}


def as_dict(record: WindowRecord) -> dict:
    return msgspec.to_builtins(record)


def raw(**changes) -> bytes:
    """A valid record's JSON with some fields replaced (None removes the field)."""
    fields = {**as_dict(window(30)), **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not None}).encode()


def reason(value: bytes, now: float = NOW) -> str:
    admitted = admit(value, now, BOUND)
    return admitted.reason if isinstance(admitted, Invalid) else "admitted"


def test_every_record_the_processor_builds_is_admitted_unchanged():
    totals = WindowTotals(
        window_start=int(parse_iso("2024-10-26T10:30:00Z")),
        events=3,
        duration_ms=3500,
        event_types=Counter({"click": 2, "purchase": 1}),
        devices=Counter({"mobile": 3}),
        countries=Counter({"DE": 3}),
        categories=Counter({"books": 3}),
        unique_users=2,
        unique_sessions=2,
        purchase_sessions=1,
        pages=Counter({"/cart": 3}),
        referrers=Counter({"google.com": 3}),
    )
    record = build_record(totals, 300, revision=2, final=True, published_at=NOW + 0.25)
    assert admit(encode_record(record), NOW, BOUND) == record


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x00\xff not json", NOT_JSON),
        (b"", NOT_JSON),
        (b'{"unknown": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", NOT_JSON),
        (b" " * (MAX_RECORD_BYTES + 1), TOO_LARGE),
        (raw(total_events=None), MISSING_FIELD),
        (raw(total_events="many"), WRONG_TYPE),
        (raw(devices=[1, 2]), WRONG_TYPE),
        (raw(total_events=-1), INVALID_VALUE),
        (raw(top_pages={"/": -5}), INVALID_VALUE),
        (raw(late_events=10**30), INVALID_VALUE),
        (raw(revision=0), INVALID_VALUE),
        (raw(avg_duration_ms=1e308), INVALID_VALUE),
        (raw(categories={f"c{i}": 1 for i in range(MAX_ENTRIES + 1)}), INVALID_VALUE),
        (raw(top_pages={"/" * 5000: 1}), INVALID_VALUE),
        (raw(window_start="not a time"), INVALID_VALUE),
        (raw(window_start="2024-10-26T10:30:00+02:00"), INVALID_VALUE),
        (raw(window_start="2024-10-26T10:30:00.5Z"), INVALID_VALUE),
        (raw(window_start="2024-13-45T10:30:00Z"), INVALID_WINDOW),
        (raw(window_start="0000-01-01T00:00:00Z"), INVALID_WINDOW),
        (raw(window_end="2024-10-26T10:30:00Z"), INVALID_WINDOW),
        (raw(window_end="2024-10-26T10:25:00Z"), INVALID_WINDOW),
        (
            raw(window_start="2099-01-01T00:00:00Z", window_end="2099-01-01T00:05:00Z"),
            FUTURE_WINDOW,
        ),
    ],
)
def test_a_record_that_fails_to_decode_or_validate_is_invalid_with_its_reason(value, expected):
    assert expected in INVALID_REASONS
    assert reason(value) == expected


def test_a_window_may_start_up_to_the_bound_ahead_of_the_clock_and_replays_always_show():
    start = NOW + BOUND
    ahead = raw(window_start="2024-10-26T11:22:30Z", window_end="2024-10-26T11:27:30Z")
    assert parse_iso("2024-10-26T11:22:30Z") == start
    assert reason(ahead) == "admitted"
    assert reason(ahead, now=NOW - 1) == FUTURE_WINDOW
    replay = raw(window_start="2019-03-01T00:00:00Z", window_end="2019-03-01T00:05:00Z")
    assert reason(replay) == "admitted"


def test_no_input_makes_admit_raise():
    rng = random.Random(7)
    valid = raw()
    inputs = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(64))) for _ in range(500)]
    for _ in range(500):  # a valid record with bytes flipped, cut or repeated
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        inputs.append(bytes(mutated[: rng.randrange(len(mutated) + 1)]))
    inputs += [
        b'{"top_pages": {' + b",".join(b'"%d": 1' % i for i in range(100_000)) + b"}}",
        b'{"a": ' + b"{" * 50_000 + b"}" * 50_000 + b"}",
        b"9" * 100_000,
        b'"' + "\u202e".encode() * 10_000 + b'"',
    ]
    for value in inputs:
        assert isinstance(admit(value, NOW, BOUND), WindowRecord | Invalid)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("/products/laptop", "/products/laptop"),
        ("/ünïcødé/日本/😀", "/ünïcødé/日本/😀"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x07\x7f\x9b", "\\x00\\x07\\x7f\\x9b"),
        ("a\u202eb\u2066c\u200bd\ufeff", "a\\u202eb\\u2066c\\u200bd\\ufeff"),
        ("x\u2028y\u2029z\r\n", "x\\u2028y\\u2029z\\x0d\\x0a"),
        ("\U000e0001tag", "\\U000e0001tag"),
        ("\\x1b", "\\\\x1b"),  # a literal backslash cannot pose as an escape
    ],
)
def test_printable_makes_every_control_and_format_character_visible(name, shown):
    assert printable(name) == shown


def test_printable_is_injective_so_names_never_merge():
    names = ["\x1b", "\\x1b", "\\\\x1b", "\\", "\\\\", "\u202e", "\\u202e"]
    assert len({printable(name) for name in names}) == len(names)


def test_json_lines_stay_valid_json_of_the_published_record_with_nothing_unsafe():
    record = window(30)
    record.top_pages = dict(HOSTILE_NAMES)
    record.categories = {"emoji 😀": 1, "日本": 2}
    line = json_line(record)
    assert msgspec.json.decode(line, type=WindowRecord) == record
    assert json.loads(line)["top_pages"] == HOSTILE_NAMES
    assert not [c for c in line if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    assert "😀" in line and "日本" in line  # printable text is left alone
    assert "\n" not in line


def hostile_record() -> WindowRecord:
    record = window(30, total=200)
    record.top_pages = dict(HOSTILE_NAMES)
    record.top_referrers = {"\x1b]8;;http://evil\x07link": 200}
    record.event_types = {"click\x1b[1A": 200}
    record.devices = {"mobile\u202e": 200}
    return record


def test_text_block_escapes_control_characters_in_every_name():
    block = render_block(hostile_record())
    assert not UNSAFE & set(block.replace("\n", ""))
    for shown in (
        "/clear\\x1b[2J\\x1b[31mred",
        "/csi\\x9b31m",
        "/bidi\\u202eevil\\u2066",
        "[bold red]markup[/]",
        "/line\\u2028break\\x0anext",
        "\\x1b]8;;http://evil\\x07link",
        "click\\x1b[1A",
        "mobile\\u202e",
    ):
        assert f"   {shown} " in block


def test_live_view_shows_names_escaped_and_markup_literally():
    book = WindowBook()
    state = DashboardState(
        topic="clickstream-metrics", window_seconds=300, history=12, book=book, backfill_done=True
    )
    state.apply(book.offer(hostile_record()), NOW)
    state.invalid_records = 3
    console = Console(width=160, height=40, record=True, force_terminal=True, color_system=None)
    console.print(render(state, NOW, 160, 40))
    screen = console.export_text(styles=False)
    assert not UNSAFE & set(screen.replace("\n", ""))
    for shown in ("[bold red]markup[/]", "/clear\\x1b[2J\\x1b[31mred", "/bidi\\u202eevil\\u2066"):
        assert shown in screen
    assert "mobile\\u202e" in screen and "click\\x1b[1A" in screen
    assert "3 invalid skipped" in screen.splitlines()[-1]
