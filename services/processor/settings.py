"""`clickstream process` settings, and the fixed numbers the processor runs with."""

from __future__ import annotations

import os
import socket

from services.common import config as cfg
from services.common.config import Setting, non_negative_int, positive_int
from services.processor.decode import DEFAULT_MAX_FUTURE_SKEW_S

# Measured with `clickstream bench`: prefetch enough to keep the loop busy, bounded so
# RSS stays near 120 MB (lz4 batches decompress to several times their fetched size).
FETCH_SETTINGS = {
    "fetch.max.bytes": 4 * 1024 * 1024,
    "max.partition.fetch.bytes": 1 * 1024 * 1024,
    "queued.max.messages.kbytes": 4 * 1024,
    # Default 1000 ms: with a bounded queue the fetcher would idle a second every
    # time the loop fell behind by one batch.
    "fetch.queue.backoff.ms": 5,
    # Default 5 minutes: partitions added to the events topic would wait that long for an
    # owner. A metadata request every 10 s costs the broker nothing noticeable.
    "topic.metadata.refresh.interval.ms": 10_000,
}
# How often the processor re-reads the events topic's partition count, so windows merge
# partitions added while it runs. Until then a new partition cannot hold windows open:
# records written to it in those seconds may arrive after their window closed.
PARTITION_REFRESH_S = 10.0
# An unanswered log-end query counts the partition as active: it may hold windows open a
# little longer, never close one early.
LOG_END_TIMEOUT_S = 5.0
# A partition whose dead letters Kafka did not confirm pauses this long before its batch
# is read again: long enough not to spin on a lasting fault, short enough for a blip.
DEAD_LETTER_RETRY_S = 5.0

# The emitter lease outlives several missed punctuations (a GC pause, a slow Redis call)
# so a live emitter keeps it, yet a dead one is replaced within about two seconds.
EMITTER_LEASE_MIN_MS = 2000
EMITTER_LEASE_PUNCTUATIONS = 8
# librdkafka wants heartbeats a few times per session timeout; 100 ms is its floor here.
HEARTBEATS_PER_SESSION = 6
HEARTBEAT_MIN_MS = 100
# On shutdown: whatever the producers still hold gets this long to be acknowledged; an
# unacknowledged revision or dead letter is not lost, its fence never moved past it.
SHUTDOWN_FLUSH_TIMEOUT_S = 10

GROUP_PROTOCOLS = ("classic", "consumer")

# Python's cyclic GC ran a young collection every 700 container allocations, and a poll
# allocates thousands (batches, messages, deltas) that live until the next poll's
# settle, so young collections kept walking and promoting them. One every 20,000 cut
# processor CPU per event by about a tenth in `clickstream bench` (README Performance).
# Cycles are still collected, only later; peak RSS is in the same bench.
GC_THRESHOLDS = (20_000, 20, 20)

SETTINGS = (
    cfg.WINDOW_SECONDS,
    cfg.GRACE_SECONDS,
    Setting(
        "IDLE_PARTITION_SECONDS",
        30,
        "a caught-up partition with no new records for this long stops holding windows",
        parse=positive_int,
    ),
    cfg.ALLOWED_LATENESS_SECONDS,
    Setting(
        "MAX_FUTURE_SKEW_SECONDS",
        DEFAULT_MAX_FUTURE_SKEW_S,
        "an event more than this ahead of its Kafka record timestamp goes to the DLQ "
        "(future_timestamp) and never moves a watermark",
        parse=non_negative_int,
    ),
    Setting("STATE_TTL_SECONDS", 14400, "TTL of window state in Redis", parse=positive_int),
    cfg.ROLLUP_RETENTION_DAYS,
    Setting(
        "HELD_REGISTERS",
        True,
        "a replica keeps the HyperLogLog registers of what Redis applied and sends only "
        "members that raise one: the same counts for far less Redis CPU, 16 KiB per "
        "partition, open window and HLL metric (off: every member is sent every time)",
        parse=cfg.parse_bool,
    ),
    Setting(
        "NORMALIZE_PAGE_URLS",
        True,
        "count page URLs without their query string and fragment (/p?id=1#x counts as /p)",
        parse=cfg.parse_bool,
    ),
    Setting(
        "START_FROM",
        "earliest",
        "where a partition with no fence begins",
        choices=("earliest", "latest"),
    ),
    cfg.PROCESSOR_GROUP,
    cfg.STATE_NAMESPACE,
    cfg.REDIS_RETRY_SECONDS,
    Setting(
        "REDIS_ALLOW_EVICTION",
        False,
        "run even if Redis' maxmemory-policy is not noeviction (window state may be evicted "
        "while offset fences survive: only for those who know better)",
        parse=cfg.parse_bool,
    ),
    Setting(
        "KAFKA_RETRY_SECONDS",
        120.0,
        "how long the broker may fail to confirm dead letters or window records, or to answer "
        "metadata queries, before the processor exits; meanwhile it waits, not ready",
        parse=cfg.positive_float,
    ),
    Setting("BATCH_MAX_RECORDS", 5000, "records per poll", parse=positive_int),
    Setting("BATCH_MAX_WAIT_MS", 100, "longest wait for a batch to fill", parse=positive_int),
    Setting(
        "EMIT_INTERVAL_MS", 250, "punctuation period: heartbeat and emitter", parse=positive_int
    ),
    # Classic by default: measured kill-to-processing is the same for both protocols at
    # equal session timeouts (README "Takeover"), and classic works with every broker.
    Setting(
        "GROUP_PROTOCOL",
        "classic",
        "consumer group protocol (librdkafka group.protocol): classic, or consumer for "
        "KIP-848, where the broker sets the session timeout (group.consumer.session.timeout.ms)",
        choices=GROUP_PROTOCOLS,
    ),
    Setting(
        "SESSION_TIMEOUT_MS",
        6000,
        "consumer group session timeout (classic protocol only)",
        parse=positive_int,
    ),
    Setting(
        "METRICS_PORT", 9100, "port of /metrics, /healthz, /readyz (0: off)", parse=non_negative_int
    ),
    Setting("PROCESSOR_ID", f"{socket.gethostname()}-{os.getpid()}", "this replica's name"),
    Setting(
        "GROUP_INSTANCE_ID",
        "",
        "static group membership: a stable name per replica (a StatefulSet pod name) lets a "
        "restarted replica take its partitions back without a rebalance; empty: dynamic",
    ),
)


def group_settings(config: cfg.Config) -> dict[str, object]:
    """The consumer's group membership settings for GROUP_PROTOCOL.

    With KIP-848 (`consumer`) the broker owns the session timeout, the heartbeat
    interval and the assignor (group.consumer.* broker settings): librdkafka refuses
    to create a consumer given session.timeout.ms, heartbeat.interval.ms or
    partition.assignment.strategy, so they are only passed to the classic protocol.
    """
    if config.group_protocol == "consumer":
        settings: dict[str, object] = {"group.protocol": "consumer"}
    else:
        settings = {
            "group.protocol": "classic",
            "session.timeout.ms": config.session_timeout_ms,
            "heartbeat.interval.ms": max(
                config.session_timeout_ms // HEARTBEATS_PER_SESSION, HEARTBEAT_MIN_MS
            ),
        }
    if config.group_instance_id:
        settings["group.instance.id"] = config.group_instance_id
    return settings


def assign(consumer, partitions: list, group_protocol: str) -> None:
    """Take the partitions an assignment callback names, with their start offsets."""
    # KIP-848 rebalances are incremental: the callback names only the partitions added,
    # and librdkafka refuses a whole-assignment assign() during one.
    if group_protocol == "consumer":
        consumer.incremental_assign(partitions)
    else:
        consumer.assign(partitions)
