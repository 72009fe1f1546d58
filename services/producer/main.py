"""`clickstream produce`: generate realistic events into the events topic.

Delivery is asynchronous: produce() queues, delivery callbacks count, and
poll(0) serves callbacks between sends, so nothing ever waits per event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from services.common.config import Config, Setting, non_negative_int, positive_int
from services.common.kafka import make_producer, partition_count, produce, wait_for_broker
from services.common.logging import get_logger
from services.common.observability import EVENTS_PRODUCED, PRODUCE_ERRORS, Health, serve
from services.common.schema import encode_event
from services.common.shutdown import Stopper
from services.producer.generator import TrafficGenerator

log = get_logger("producer")

PROGRESS_EVERY_S = 5.0
# At the end, records still queued get this long to be acknowledged; the rest count as
# undelivered and the exit status says so.
FINAL_FLUSH_TIMEOUT_S = 30
# Longest wait between sends when paced: short enough to serve delivery callbacks and
# notice a stop request promptly.
PACING_POLL_MAX_S = 0.1


def parse_rate(text: str) -> float:
    """Events per second, or 'max' (no pacing) as infinity."""
    if text.strip().lower() == "max":
        return float("inf")
    rate = float(text)
    if rate <= 0:
        raise ValueError("must be positive or 'max'")
    return rate


SETTINGS = (
    Setting(
        "PRODUCER_RATE", 10.0, "events per second, or 'max'", parse=parse_rate, aliases=("--rate",)
    ),
    Setting(
        "PRODUCER_COUNT",
        0,
        "stop after this many events (0: no limit)",
        parse=non_negative_int,
        aliases=("--count",),
    ),
    Setting(
        "PRODUCER_DURATION",
        0.0,
        "stop after this many seconds (0: no limit)",
        parse=float,
        aliases=("--duration",),
    ),
    Setting(
        "PRODUCER_USERS", 100, "simulated user population", parse=positive_int, aliases=("--users",)
    ),
    Setting(
        "PRODUCER_SEED",
        None,
        "random seed for reproducible traffic",
        parse=int,
        aliases=("--seed",),
    ),
    Setting(
        "METRICS_PORT", 0, "port of /metrics, /healthz, /readyz (0: off)", parse=non_negative_int
    ),
)


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    last_partition: int = -1
    last_offset: int = -1
    first_error: str = ""

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or str(error)
            PRODUCE_ERRORS.inc()
            return
        self.delivered += 1
        EVENTS_PRODUCED.inc()
        self.last_partition = message.partition()
        self.last_offset = message.offset()


def run(config: Config) -> int:
    health = Health()
    stop_http = serve(config.metrics_port, health) if config.metrics_port else None
    try:
        return _run(config, health)
    finally:
        if stop_http:
            stop_http()


def _run(config: Config, health: Health) -> int:
    producer = make_producer(config)
    metadata = wait_for_broker(producer)
    partition_count(metadata, config.events_topic)  # fail early with a clear message
    health.ready = True
    generator = TrafficGenerator(users=config.producer_users, seed=config.producer_seed)
    stats = DeliveryStats()
    stopper = Stopper()
    rate = config.producer_rate
    log.info(
        f"Generating {'max' if rate == float('inf') else f'{rate:g}'} events/second",
        topic=config.events_topic,
        users=config.producer_users,
        seed=config.producer_seed,
    )
    started = time.monotonic()
    sent = produce_loop(producer, config, generator, stats, stopper, started, health.beat)
    remaining = producer.flush(FINAL_FLUSH_TIMEOUT_S)
    elapsed = time.monotonic() - started
    log.info(
        "Producer finished",
        sent=sent,
        delivered=stats.delivered,
        failed=stats.failed,
        undelivered=remaining,
        elapsed_s=round(elapsed, 2),
        events_per_s=round(stats.delivered / elapsed) if elapsed > 0 else 0,
        first_error=stats.first_error or None,
    )
    return 0 if stats.failed == 0 and remaining == 0 else 1


def produce_loop(
    producer: Producer,
    config: Config,
    generator: TrafficGenerator,
    stats: DeliveryStats,
    stopper: Stopper,
    started: float,
    beat=lambda: None,
) -> int:
    """Send until count, duration or a signal ends the run; returns events sent."""
    rate, count, duration = config.producer_rate, config.producer_count, config.producer_duration
    topic, on_delivery = config.events_topic, stats.on_delivery
    next_progress = started + PROGRESS_EVERY_S
    sent = 0
    while not stopper.requested:
        beat()
        now = time.monotonic()
        if (count and sent >= count) or (duration and now - started >= duration):
            break
        if rate != float("inf"):
            due = started + sent / rate
            if due > now:
                producer.poll(min(due - now, PACING_POLL_MAX_S))
                continue
        event = generator.next_event(time.time())
        value = encode_event(event)
        produce(producer, topic, value, key=event.user_id, on_delivery=on_delivery)
        producer.poll(0)
        sent += 1
        if now >= next_progress:
            next_progress = now + PROGRESS_EVERY_S
            log_progress(sent, started, stats)
    log_progress(sent, started, stats)
    return sent


def log_progress(sent: int, started: float, stats: DeliveryStats) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info(
        f"Sent {sent:,} events | Rate: {sent / elapsed:,.1f} events/sec | "
        f"Partition: {stats.last_partition} | Offset: {stats.last_offset}",
        sent=sent,
        delivered=stats.delivered,
        failed=stats.failed,
    )
