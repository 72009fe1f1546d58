"""`clickstream consume` against hostile records on the real metrics topic.

Records are produced to the broker as raw bytes (anything with produce rights
can write them) and the dashboard runs as a real process, as in
tests/integration/test_consumer.py: invalid and far-future records are
skipped, logged and counted, and names with control characters or markup
reach no view unescaped.
"""

from __future__ import annotations

import json
import os
import pty
import threading
import time
import urllib.request
from collections.abc import Callable

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from load.ports import free_port
from services.common.kafka import make_producer
from services.common.window_record import WindowRecord, encode_record, iso_utc
from services.consumer import main as consumer
from tests.integration.test_consumer import ConsumeProcess, shown, window

pytestmark = pytest.mark.integration

HOSTILE_PAGES = {
    "/clear\x1b[2J\x1b[31mred": 500,
    "/csi\x9b31m": 400,
    "/bidi\u202eevil": 300,
    "[bold red]markup[/]": 200,
}
ESCAPED_PAGES = ("/clear\\x1b[2J\\x1b[31mred", "/csi\\x9b31m", "/bidi\\u202eevil")
RAW_UNSAFE = ("\x1b[2J\x1b[31m", "\x9b", "\u202e")


def produce(config, values: list[bytes], partition: int = 0) -> list[tuple[int, int]]:
    """Raw values to one metrics partition, in order; their (partition, offset)."""
    delivered: list[tuple[int, int]] = []

    def on_delivery(error, message) -> None:
        assert error is None, error
        delivered.append((message.partition(), message.offset()))

    producer = make_producer(config)
    for index, value in enumerate(values):
        # The metrics topic is compacted: the broker refuses a record without a key.
        key = f"untrusted-{time.time_ns()}-{index}"
        producer.produce(
            config.metrics_topic, value, key=key, partition=partition, on_delivery=on_delivery
        )
    assert producer.flush(10) == 0
    return delivered


def fields(record: WindowRecord, **changes) -> bytes:
    return json.dumps({**msgspec.to_builtins(record), **changes}).encode()


def future_window() -> bytes:
    start = (int(time.time()) // 300 + 288) * 300  # a day ahead
    return fields(window(1), window_start=iso_utc(start), window_end=iso_utc(start + 300))


def invalid_counts(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        families = text_string_to_metric_families(reply.read().decode())
    return {
        sample.labels["reason"]: sample.value
        for family in families
        if family.name == "clickstream_dashboard_invalid_records"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def skipped(run: ConsumeProcess, topic: str) -> set[tuple[int, int, str]]:
    """(partition, offset, reason) of every 'invalid metrics record skipped' log line."""
    found = set()
    for line in run.stderr:
        if "invalid metrics record skipped" not in line:
            continue
        entry = json.loads(line)
        assert entry["topic"] == topic
        found.add((entry["partition"], entry["offset"], entry["reason"]))
    return found


def test_invalid_and_far_future_records_are_skipped_logged_and_counted(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    produce(config, [encode_record(window(1))])
    backfilled = produce(
        config,
        [
            b"not json",
            fields(window(2), total_events=-5),  # the live view used to crash on these two
            fields(window(2), window_start="2024-10-26T25:00:00Z"),
            fields(window(2), window_end="2024-10-26T10:00:00Z"),
            future_window(),
        ],
    )
    produce(config, [encode_record(window(3))])
    port = free_port()
    with ConsumeProcess(pipeline, "--json", "--from-beginning", METRICS_PORT=str(port)) as run:
        assert run.wait_for(lambda: len(run.stdout) >= 2), run.stderr
        assert shown(run.json_records()) == [(1, 1), (3, 1)]
        # The backfill is read to its end before anything is shown: every count is in.
        assert invalid_counts(port) == {
            "too_large": 0,
            "not_json": 1,
            "missing_field": 0,
            "wrong_type": 0,
            "invalid_value": 1,
            "invalid_window": 2,
            "future_window": 1,
        }
        reasons = ["not_json", "invalid_value", "invalid_window", "invalid_window", "future_window"]
        expected = {(p, o, r) for (p, o), r in zip(backfilled, reasons, strict=True)}
        assert run.wait_for(lambda: skipped(run, config.metrics_topic) == expected), run.stderr

        # Live: invalid records, then an honest window behind them on the same partition.
        live = produce(config, [future_window(), b'{"window_start": 1}', encode_record(window(4))])
        assert run.wait_for(lambda: (4, 1) in shown(run.json_records())), run.stderr
        assert shown(run.json_records()) == [(1, 1), (3, 1), (4, 1)]
        counts = invalid_counts(port)
        assert (counts["future_window"], counts["wrong_type"]) == (2, 1)
        (p1, o1), (p2, o2) = live[:2]
        expected |= {(p1, o1, "future_window"), (p2, o2, "wrong_type")}
        assert run.wait_for(lambda: skipped(run, config.metrics_topic) == expected), run.stderr
        assert run.stop() == 0


def hostile_window() -> WindowRecord:
    record = window(1, late=0)
    record.total_events = sum(HOSTILE_PAGES.values())
    record.top_pages = dict(HOSTILE_PAGES)
    record.devices = {"mobile\x1b[1A": record.total_events}
    return record


def test_control_characters_in_names_are_escaped_in_text_blocks_and_json_lines(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    produce(config, [encode_record(hostile_window())])
    with ConsumeProcess(pipeline) as run:  # stdout is a pipe: text mode
        assert run.wait_for(lambda: run.stdout.count("=" * 80) >= 3), run.stderr
        block = "\n".join(run.stdout)
        for name in (*ESCAPED_PAGES, "[bold red]markup[/]", "mobile\\x1b[1A"):
            assert f"   {name} " in block
        assert not [raw for raw in RAW_UNSAFE if raw in block]
        assert run.stop() == 0
    with ConsumeProcess(pipeline, "--json") as run:
        assert run.wait_for(lambda: len(run.stdout) >= 1), run.stderr
        line = run.stdout[0]
        assert not [raw for raw in RAW_UNSAFE if raw in line]
        assert msgspec.json.decode(line, type=WindowRecord) == hostile_window()
        assert run.stop() == 0


class TerminalProcess(ConsumeProcess):
    """The dashboard with its stdout on a pseudo-terminal, so it draws the live view."""

    def __init__(self, pipeline, **environ: str):
        self.master, slave = pty.openpty()
        self.screen = ""
        super().__init__(pipeline, stdout=slave, COLUMNS="160", LINES="50", **environ)
        os.close(slave)
        threading.Thread(target=self._read_terminal, daemon=True).start()

    def _read_terminal(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            with self._changed:
                self.screen += chunk.decode(errors="replace")
                self._changed.notify_all()

    def wait_for_screen(self, condition: Callable[[str], bool]) -> bool:
        return self.wait_for(lambda: condition(self.screen))


def test_live_view_skips_records_that_used_to_crash_it_and_escapes_names(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    produce(
        config,
        [
            encode_record(hostile_window()),
            fields(window(2), window_start="2024-10-26T10:99:00Z"),
            fields(window(2), total_events=-1, top_pages={"/": -3}),
            future_window(),
        ],
    )
    with TerminalProcess(pipeline, DASHBOARD_OUTPUT="live") as run:
        assert run.wait_for_screen(lambda screen: "3 invalid skipped" in screen), run.stderr
        assert run.wait_for_screen(lambda screen: all(n in screen for n in ESCAPED_PAGES))
        assert "Window 10:05 → 10:10 UTC" in run.screen  # the honest window is the latest
        assert "[bold red]markup[/]" in run.screen
        assert not [raw for raw in RAW_UNSAFE[1:] if raw in run.screen]
        assert "/clear\x1b" not in run.screen
        assert run.process.poll() is None
        assert run.stop() == 0
