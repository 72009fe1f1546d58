"""The moving parts of a chaos run: replicas, metrics scraping, topic readers.

Each piece does one thing and knows nothing about the verdict; load.chaos
composes them (its private Redis is load.redis_server).
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from load import processes
from load.verdict import DlqEntry
from services.common.config import Config
from services.common.kafka import make_consumer
from services.common.logging import get_logger
from services.common.window_record import WindowRecord, decode_record

log = get_logger("load.chaos")

APPLIED_METRIC = "clickstream_events_applied"  # counter, label `partition`
# Broker round trips (metadata, offsets): generous, a chaos run's broker is busy.
METADATA_TIMEOUT_S = 10
LOG_END_TIMEOUT_S = 5
SCRAPER_JOIN_TIMEOUT_S = 5
READ_BATCH = 5000  # records per consume() when reading a topic back


class Replica:
    """One processor process in a fixed slot: same port and log file across restarts."""

    def __init__(
        self,
        slot: int,
        command: Sequence[str],
        env: Mapping[str, str],
        metrics_port: int,
        log_path: Path,
    ):
        self.slot = slot
        self.command = list(command)
        self.env = dict(env)
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, whatever the process was doing."""
        processes.kill(self.process)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within the timeout."""
        pid = self.pid
        if processes.stop(self.process, timeout_s):
            log.warning("replica ignored SIGTERM, killed it", slot=self.slot, pid=pid)

    def get(self, path: str, timeout_s: float = 1.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""
        except OSError:
            return 0, b""


def applied_by_partition(metrics_text: str) -> dict[int, float]:
    """clickstream_events_applied_total per source partition, from a /metrics page."""
    applied: dict[int, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != APPLIED_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and "partition" in sample.labels:
                partition = int(sample.labels["partition"])
                applied[partition] = applied.get(partition, 0) + sample.value
    return applied


@dataclass
class Kill:
    slot: int
    pid: int
    at: float  # time.monotonic()
    partitions: frozenset[int]  # partitions the replica was applying just before


@dataclass
class ProgressLog:
    """When each partition's applied-events counter last moved, and in which process."""

    moves: dict[int, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    last: dict[tuple[int, int], float] = field(default_factory=dict)  # (pid, partition) -> value

    def observe(self, pid: int, at: float, applied: Mapping[int, float]) -> None:
        for partition, value in applied.items():
            if value > self.last.get((pid, partition), 0.0):
                self.moves[partition].append((at, pid))
            self.last[(pid, partition)] = value

    def partitions_of(self, pid: int, since: float) -> frozenset[int]:
        """Partitions whose counter moved in `pid` since `since`."""
        return frozenset(
            partition
            for partition, moves in self.moves.items()
            if any(at >= since and mover == pid for at, mover in moves)
        )

    def recovery_seconds(self, kill: Kill) -> float | None:
        """From the kill until every partition it held moved again in another process."""
        if not kill.partitions:
            return None
        worst = 0.0
        for partition in kill.partitions:
            resumed = [
                at for at, pid in self.moves.get(partition, ()) if at > kill.at and pid != kill.pid
            ]
            if not resumed:
                return float("inf")
            worst = max(worst, min(resumed) - kill.at)
        return worst


class Scraper:
    """Polls every live replica's /metrics a few times a second into a ProgressLog."""

    def __init__(self, replicas: Sequence[Replica], interval_s: float = 0.25):
        self.replicas = replicas
        self.interval_s = interval_s
        self.progress = ProgressLog()
        self.lock = threading.Lock()
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=SCRAPER_JOIN_TIMEOUT_S)

    def scrape_once(self) -> None:
        for replica in self.replicas:
            pid = replica.pid
            if pid is None or not replica.alive():
                continue
            status, body = replica.get("/metrics", timeout_s=0.5)
            if status != 200:
                continue
            applied = applied_by_partition(body.decode())
            with self.lock:
                self.progress.observe(pid, time.monotonic(), applied)
                self.scrapes += 1

    def partitions_of(self, pid: int, within_s: float = 1.5) -> frozenset[int]:
        with self.lock:
            return self.progress.partitions_of(pid, time.monotonic() - within_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.scrape_once()


class TopicReader:
    """Reads a whole topic from its start offsets, with a consumer that never commits."""

    def __init__(self, config: Config, topic: str, start: Mapping[int, int] | None = None):
        self.topic = topic
        self.consumer: Consumer = make_consumer(config, f"chaos-reader-{uuid.uuid4().hex[:8]}")
        metadata = self.consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        partitions = sorted(metadata.topics[topic].partitions)
        start = start or {}
        self.consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in partitions])
        self.partitions = partitions

    def poll(self, timeout_s: float = 0.5) -> list:
        return [
            m
            for m in self.consumer.consume(num_messages=READ_BATCH, timeout=timeout_s)
            if m.error() is None
        ]

    def caught_up(self) -> bool:
        """Every partition's position has reached its current end offset."""
        positions = self.consumer.position([TopicPartition(self.topic, p) for p in self.partitions])
        for position in positions:
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, position.partition),
                timeout=LOG_END_TIMEOUT_S,
                cached=False,
            )
            if high > 0 and (position.offset < 0 or position.offset < high):
                return False
        return True

    def close(self) -> None:
        self.consumer.close()


def end_offsets(config: Config, topic: str) -> dict[int, int]:
    consumer = make_consumer(config, f"chaos-offsets-{uuid.uuid4().hex[:8]}")
    try:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S)[
                1
            ]
            for p in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()


def _window_records(messages: list) -> list[WindowRecord]:
    records = []
    for message in messages:
        try:
            records.append(decode_record(message.value()))
        except msgspec.DecodeError:  # not a window record: the verdict reports the window
            log.warning("undecodable record on the metrics topic", offset=message.offset())
    return records


def wait_for_finals(
    reader: TopicReader,
    windows: Sequence[str],
    deadline: float,
    on_tick: Callable[[], None] = lambda: None,
) -> list[WindowRecord]:
    """Every record read until each of `windows` has a final one (or the deadline)."""
    records: list[WindowRecord] = []
    waiting = set(windows)
    while True:
        batch = _window_records(reader.poll())
        records.extend(batch)
        waiting.difference_update(record.window_start for record in batch if record.final)
        on_tick()
        if not waiting:
            # Read on to the end: repeats of a final must be seen by the verdict too.
            while not reader.caught_up():
                records.extend(_window_records(reader.poll()))
            return records
        if time.monotonic() > deadline:
            log.warning(
                "deadline passed with windows lacking a final record", windows=sorted(waiting)
            )
            return records


def _header(headers: dict[str, bytes], name: str) -> str:
    value = headers.get(name)
    return value.decode() if value is not None else ""


def read_dlq(
    reader: TopicReader, expected: int, deadline: float, on_tick: Callable[[], None] = lambda: None
) -> list[DlqEntry]:
    """DLQ entries until `expected` distinct sources arrived and the topic is drained."""
    entries: list[DlqEntry] = []
    sources: set[tuple[int, int]] = set()
    while time.monotonic() < deadline:
        for message in reader.poll():
            headers = dict(message.headers() or [])
            try:
                partition = int(_header(headers, "dlq.source.partition"))
                offset = int(_header(headers, "dlq.source.offset"))
            except ValueError:
                partition, offset = -1, message.offset()
            entry = DlqEntry(
                _header(headers, "dlq.reason"), partition, offset, message.key(), message.value()
            )
            entries.append(entry)
            sources.add((partition, offset))
        on_tick()
        if len(sources) >= expected and reader.caught_up():
            break
    return entries


def pick(rng: random.Random, replicas: Sequence[Replica]) -> Replica | None:
    live = [replica for replica in replicas if replica.alive()]
    return rng.choice(live) if live else None
