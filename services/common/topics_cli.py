"""`clickstream topics create|describe`."""

from __future__ import annotations

import argparse

from services.common.config import Config, Setting, positive_int
from services.common.kafka import make_admin, wait_for_broker
from services.common.logging import get_logger
from services.common.topics import PARTITION_SETTINGS, ensure_topics, pipeline_topics

log = get_logger("topics")

WANTS_ARGS = True
SETTINGS = (
    Setting(
        "TOPIC_REPLICATION_FACTOR",
        1,
        "replication factor (3 on a cluster)",
        parse=positive_int,
        aliases=("--replication-factor",),
    ),
    Setting(
        "TOPIC_MIN_INSYNC_REPLICAS",
        1,
        "min.insync.replicas (2 on a cluster)",
        parse=positive_int,
        aliases=("--min-insync-replicas",),
    ),
    *PARTITION_SETTINGS,
)


def run(config: Config, args: argparse.Namespace) -> int:
    admin = make_admin(config)
    metadata = wait_for_broker(admin)
    specs = pipeline_topics(config)
    if args.action == "describe":
        for spec in specs:
            topic = metadata.topics.get(spec.name)
            if topic is None:
                log.info("topic missing", topic=spec.name)
            else:
                log.info("topic", topic=spec.name, partitions=len(topic.partitions))
        return 0
    reports = ensure_topics(admin, specs, config.topic_replication_factor)
    for report in reports:
        if report.status == "differs":
            log.warning(
                "topic exists with different settings",
                topic=report.name,
                differences=report.differences,
            )
        else:
            log.info(f"topic {report.status}", topic=report.name)
    return 1 if any(report.status == "differs" for report in reports) else 0
