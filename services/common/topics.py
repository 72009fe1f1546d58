"""The pipeline's topics: their partitions and settings, and idempotent creation.

Creation is idempotent: an existing topic is left alone, and any setting that
differs from what the pipeline expects is reported, not silently changed. The
`clickstream topics create|describe` command is services/common/topics_cli.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from services.common.config import Config, Setting, positive_int
from services.common.logging import get_logger

log = get_logger(__name__)

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS

# The original example's sizing: up to 6 processor replicas share the events; the
# metrics are small (one record per window revision). The events partitions cap the
# processor fleet (one replica per partition at most), so they are a setting: tools that
# build a pipeline of their own (chaos, bench) read the same settings.
EVENTS_PARTITIONS = Setting(
    "EVENTS_PARTITIONS",
    6,
    "partitions of the events topic: the most processor replicas that get work",
    parse=positive_int,
)
METRICS_PARTITIONS = Setting(
    "METRICS_PARTITIONS", 3, "partitions of the metrics topic", parse=positive_int
)
DLQ_PARTITIONS = Setting(
    "DLQ_PARTITIONS", 3, "partitions of the dead-letter topic", parse=positive_int
)
PARTITION_SETTINGS = (EVENTS_PARTITIONS, METRICS_PARTITIONS, DLQ_PARTITIONS)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def pipeline_topics(config: Config) -> list[TopicSpec]:
    """The events, metrics and dead-letter topics, partitioned as `config` says."""
    min_isr = str(config.topic_min_insync_replicas)
    return [
        TopicSpec(
            config.events_topic,
            config.events_partitions,
            {"retention.ms": str(DAY_MS), "min.insync.replicas": min_isr},
        ),
        # Keyed by window start: compaction keeps the newest revision of each
        # window beyond the 7 days, retention bounds the rest.
        TopicSpec(
            config.metrics_topic,
            config.metrics_partitions,
            {
                "retention.ms": str(7 * DAY_MS),
                "cleanup.policy": "compact,delete",
                "min.insync.replicas": min_isr,
            },
        ),
        TopicSpec(
            config.dlq_topic,
            config.dlq_partitions,
            {"retention.ms": str(7 * DAY_MS), "min.insync.replicas": min_isr},
        ),
    ]


@dataclass
class TopicReport:
    name: str
    status: str  # created | exists | differs
    differences: list[str] = field(default_factory=list)


def ensure_topics(
    admin: AdminClient, specs: list[TopicSpec], replication_factor: int, timeout_s: float = 30.0
) -> list[TopicReport]:
    """Create missing topics; for existing ones, list every setting that differs."""
    metadata = admin.list_topics(timeout=timeout_s)
    missing = [spec for spec in specs if spec.name not in metadata.topics]
    reports: dict[str, TopicReport] = {}
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(spec.name, spec.partitions, replication_factor, config=spec.configs)
                for spec in missing
            ],
            operation_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result()
                reports[name] = TopicReport(name, "created")
            except KafkaException as error:
                if error.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
    existing = [spec for spec in specs if spec.name not in reports]
    if existing:
        metadata = admin.list_topics(timeout=timeout_s)
        resources = [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in existing]
        described = admin.describe_configs(resources)
        for spec, resource in zip(existing, resources, strict=True):
            actual = {name: entry.value for name, entry in described[resource].result().items()}
            topic = metadata.topics[spec.name]
            differences = []
            if len(topic.partitions) != spec.partitions:
                differences.append(
                    f"partitions: expected {spec.partitions}, found {len(topic.partitions)}"
                )
            replicas = len(next(iter(topic.partitions.values())).replicas)
            if replicas != replication_factor:
                differences.append(
                    f"replication factor: expected {replication_factor}, found {replicas}"
                )
            for key, expected in spec.configs.items():
                if actual.get(key) != expected:
                    differences.append(f"{key}: expected {expected}, found {actual.get(key)}")
            reports[spec.name] = TopicReport(
                spec.name, "differs" if differences else "exists", differences
            )
    return [reports[spec.name] for spec in specs]
