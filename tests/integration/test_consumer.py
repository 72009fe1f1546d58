"""`clickstream consume` against the real broker: publish windows, read them back through it.

The consumer runs as a real process (`python -m services.cli consume`), as in a
pod or a terminal; its stdout is collected on a thread and every wait is for a
condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import msgspec
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from services.common.config import redis_options
from services.common.kafka import make_admin, make_consumer, make_producer
from services.common.window_record import WindowRecord, encode_record, iso_utc, parse_iso
from services.consumer import main as consumer
from services.consumer.reader import MetricsReader
from services.consumer.status import processor_lag
from tests.backends import REPO
from tests.integration.kafka_helpers import end_offsets

pytestmark = pytest.mark.integration

BASE = parse_iso("2024-10-26T10:00:00Z")


def window(
    index: int,
    revision: int = 1,
    late: int = 0,
    final: bool = False,
    published_at: str = "2024-10-26T12:00:00Z",
) -> WindowRecord:
    start = BASE + index * 300
    total = 1000 + index + late
    return WindowRecord(
        window_start=iso_utc(start),
        window_end=iso_utc(start + 300),
        total_events=total,
        unique_users=100 + index,
        unique_sessions=300,
        event_types={"click": total},
        devices={"mobile": total},
        top_referrers={"google.com": total},
        top_pages={"/": total},
        avg_duration_ms=1000.0,
        revision=revision,
        late_events=late,
        final=final,
        published_at=published_at,
    )


def publish(config, records: list[WindowRecord]) -> None:
    producer = make_producer(config)
    for record in records:
        producer.produce(config.metrics_topic, encode_record(record), key=record.window_start)
    assert producer.flush(10) == 0


class ConsumeProcess:
    """`clickstream consume` in a child process; stdout and stderr lines collected as they come."""

    def __init__(self, pipeline, *args: str, stdout: int = subprocess.PIPE, **environ: str):
        env = {
            **os.environ,
            **pipeline.environ,
            "LOG_FORMAT": "json",
            "DASHBOARD_GROUP": f"test-dashboard-{uuid.uuid4().hex[:8]}",
            **environ,
        }
        self.group = env["DASHBOARD_GROUP"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "consume", *args],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        streams = ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        for stream, lines in streams:
            if stream is None:  # stdout given to something else (a pseudo-terminal)
                continue
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()

    def _collect(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    return condition()
                self._changed.wait(min(remaining, 0.5))
        return True

    def json_records(self) -> list[WindowRecord]:
        return [msgspec.json.decode(line, type=WindowRecord) for line in self.stdout if line]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def __enter__(self) -> ConsumeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def shown(records: list[WindowRecord]) -> list[tuple[int, int]]:
    return [(int((parse_iso(r.window_start) - BASE) // 300), r.revision) for r in records]


def test_json_starts_with_the_latest_window_then_shows_each_new_revision_once(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    publish(
        config,
        [
            window(1),
            window(2),
            window(2, published_at="again"),
            window(3),
            window(4),
            window(5, revision=1),
            window(5, revision=2, late=7),
        ],
    )
    with ConsumeProcess(pipeline, "--json") as run:
        assert run.wait_for(lambda: len(run.stdout) >= 1), run.stderr
        assert shown(run.json_records()) == [(5, 2)]  # the newest revision of the newest window

        # Live: an amendment, the same amendment republished after a crash, a new
        # window, then a final revision of window 5 as the sentinel behind the duplicate.
        publish(
            config,
            [
                window(4, revision=2, late=37),
                window(4, revision=2, late=37, published_at="republished"),
                window(6),
                window(4, revision=3, late=37, final=True),
            ],
        )
        assert run.wait_for(lambda: (4, 3) in shown(run.json_records())), run.stderr
        assert run.wait_for(lambda: (6, 1) in shown(run.json_records())), run.stderr
        records = run.json_records()
        assert sorted(shown(records)) == [(4, 2), (4, 3), (5, 2), (6, 1)]
        assert records[shown(records).index((4, 2))].total_events == 1004 + 37
        assert run.stop() == 0

    # Manual commits: the dashboard's group has committed the end of every partition it read.
    admin = make_admin(config)
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(run.group)])[
        run.group
    ].result(timeout=10)
    ends = end_offsets(make_consumer(config, run.group), config.metrics_topic)
    assert {tp.partition: tp.offset for tp in committed.topic_partitions} == {
        partition: end for partition, end in ends.items() if end
    }


def test_from_beginning_prints_every_distinct_revision_once_in_window_order(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    history = [
        window(3),
        window(1),
        window(2),
        window(1, revision=2, late=5),
        window(3, published_at="again"),
        window(2, revision=2, final=True),
        window(1, revision=2, late=5, published_at="again"),
    ]
    publish(config, history)
    with ConsumeProcess(pipeline, "--json", "--from-beginning") as run:
        expected = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)]
        assert run.wait_for(lambda: len(run.stdout) >= len(expected)), run.stderr
        # Nothing further arrives: the backfill is printed in one go, already deduplicated.
        assert shown(run.json_records()) == expected
        assert run.stop() == 0


def test_last_n_shows_the_newest_revision_of_the_last_n_windows(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    publish(config, [window(i) for i in range(1, 8)] + [window(6, revision=2, late=3)])
    with ConsumeProcess(pipeline, "--json", "--last", "3") as run:
        assert run.wait_for(lambda: len(run.stdout) >= 3), run.stderr
        assert shown(run.json_records()) == [(5, 1), (6, 2), (7, 1)]
        assert run.stop() == 0


def test_pod_log_prints_the_text_block_and_says_when_the_topic_is_empty(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    with ConsumeProcess(pipeline) as run:  # stdout is a pipe: text mode
        assert run.wait_for(
            lambda: any("the metrics topic is empty" in line for line in run.stderr)
        ), run.stderr
        publish(config, [window(1), window(1, revision=2, late=9)])
        assert run.wait_for(lambda: any("Revision 2, amended" in line for line in run.stdout))
        text = "\n".join(run.stdout)
        assert "⏰ Window: 2024-10-26T10:05:00Z → 2024-10-26T10:10:00Z" in text
        assert "🔁 Revision 1\n" in text
        assert "🔁 Revision 2, amended: +9 late events" in text
        assert "   Total Events:     1,010" in text
        assert run.stop() == 0


def test_missing_topic_and_unreachable_broker_exit_2_with_a_clear_message(pipeline):
    missing = "no-such-topic-" + uuid.uuid4().hex
    with ConsumeProcess(pipeline, "--json", METRICS_TOPIC=missing) as run:
        assert run.process.wait(timeout=60) == 2
        assert any("does not exist" in line for line in run.stderr)
    with ConsumeProcess(
        pipeline, "--json", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DASHBOARD_CONNECT_ATTEMPTS="1"
    ) as run:
        assert run.process.wait(timeout=60) == 2
        assert run.wait_for(
            lambda: any("did not answer a metadata request" in line for line in run.stderr)
        )


def test_reader_reports_zero_lag_once_it_has_read_to_the_end(pipeline):
    config = pipeline.config(consumer.SETTINGS)
    publish(config, [window(i) for i in range(20)])
    reader = MetricsReader(config, f"test-dashboard-{uuid.uuid4().hex[:8]}", tail=3)
    reader.open(attempts=2)
    try:
        backfill = reader.backfill()
        assert backfill.complete and not backfill.topic_empty
        assert len(backfill.records) == 9  # the last 3 records of each of 3 partitions
        assert reader.lag() == 0
    finally:
        reader.close()


def test_processor_lag_counts_events_past_the_processor_groups_commits(pipeline):
    config = pipeline.config(consumer.SETTINGS, CONSUMER_GROUP=f"test-proc-{uuid.uuid4().hex[:8]}")
    admin = make_admin(config)
    assert processor_lag(admin, config.events_topic, config.consumer_group) is None
    producer = make_producer(config)
    for i in range(60):
        producer.produce(config.events_topic, b"{}", partition=i % pipeline.partitions)
    assert producer.flush(10) == 0
    committer = make_consumer(config, config.consumer_group)
    committer.commit(
        offsets=[TopicPartition(config.events_topic, p, 4) for p in range(pipeline.partitions)],
        asynchronous=False,
    )
    committer.close()
    assert (
        processor_lag(admin, config.events_topic, config.consumer_group)
        == 60 - pipeline.partitions * 4
    )


def test_live_window_is_the_processors_unpublished_state_in_redis(pipeline):
    from collections import Counter

    from statestore import StateStore, WindowDelta

    config = pipeline.config(consumer.SETTINGS, WINDOW_SECONDS="60")
    store = StateStore.from_url(
        config.redis_url,
        config.state_namespace,
        config.events_topic,
        **redis_options(config),
    )
    live = consumer.live_window_source(config)
    try:
        assert live() is None  # no processor state yet
        store.record_topology(6, 60)
        start = int(BASE)
        for partition, users in ((0, ["u1", "u2"]), (3, ["u2", "u3", "u4"])):
            store.apply_batch(
                partition,
                -1,
                0,
                0,
                [
                    WindowDelta(
                        window_start=start,
                        events=len(users),
                        duration_ms=1000 * len(users),
                        event_types=Counter({"click": len(users)}),
                        devices=Counter({"mobile": len(users)}),
                        users=set(users),
                        sessions={f"s-{u}" for u in users},
                        pages={"/cart": len(users)},
                        referrers={"x.com": len(users)},
                    )
                ],
                float(start + 10),
                {},
                1,
            )
        record = live()
        assert (record.window_start, record.window_end) == (iso_utc(start), iso_utc(start + 60))
        assert (record.revision, record.final) == (0, False)
        assert (record.total_events, record.unique_users, record.unique_sessions) == (5, 4, 4)
        assert record.top_pages == {"/cart": 5} and record.avg_duration_ms == 1000.0
        # Once the processor publishes revision 1 the window is no longer in progress.
        store.claim_revision(start, 0, encode_record(record), 1, False)
        store.commit_revision(start, 1)
        assert live() is None
    finally:
        store.reset()
