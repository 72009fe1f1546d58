"""Pieces of `clickstream bench` that are not measurements: its table and its live traffic."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from services.common.config import Config
from services.common.kafka import make_producer, produce
from services.common.schema import encode_event
from services.producer.generator import TrafficGenerator

# Live traffic: sent in ticks of this length, so the rate holds within a tick.
TRAFFIC_TICK_S = 0.02
TRAFFIC_LINGER_MS = 5  # low, so publish delay measures the processor, not batching
TRAFFIC_FLUSH_TIMEOUT_S = 30
TABLE_WIDTH = 130  # the widest row (a target and a note) without wrapping


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""


def live_traffic(
    config: Config, topic: str, seconds: float, rate: int, stop: threading.Event
) -> None:
    """`rate` events/s of generated traffic into `topic` for `seconds` (or until `stop`)."""
    generator = TrafficGenerator(users=1000, seed=11)
    producer = make_producer(config, **{"linger.ms": TRAFFIC_LINGER_MS})
    deadline = time.time() + seconds
    tick = TRAFFIC_TICK_S
    while time.time() < deadline and not stop.is_set():
        now = time.time()
        for _ in range(int(rate * tick)):
            event = generator.next_event(now)
            produce(producer, topic, encode_event(event), key=event.user_id)
        producer.poll(0)
        time.sleep(max(0.0, tick - (time.time() - now)))
    producer.flush(TRAFFIC_FLUSH_TIMEOUT_S)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def print_table(figures: list[Figure], console: Console | None = None) -> None:
    table = Table(title="clickstream bench (one run, this machine)")
    for column in ("measure", "value", "unit", "target", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for figure in figures:
        value = f"{figure.value:,.0f}" if figure.value >= 100 else f"{figure.value:,.3f}"
        table.add_row(figure.name, value, figure.unit, figure.target, figure.note)
    (console or Console(width=TABLE_WIDTH)).print(table)
