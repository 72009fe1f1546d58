"""confluent-kafka client factories: one place for the settings every service shares.

Producers are idempotent with acks=all; consumers never auto-commit. Security
settings pass through from the configuration unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from services.common.config import Config
from services.common.errors import BrokerUnavailable, PublishError, TopicNotFound
from services.common.logging import get_logger

log = get_logger(__name__)

_SECURITY = {
    "kafka_security_protocol": "security.protocol",
    "kafka_sasl_mechanism": "sasl.mechanism",
    "kafka_sasl_username": "sasl.username",
    "kafka_sasl_password": "sasl.password",
    "kafka_ssl_ca_location": "ssl.ca.location",
    "kafka_ssl_certificate_location": "ssl.certificate.location",
    "kafka_ssl_key_location": "ssl.key.location",
    "kafka_ssl_key_password": "ssl.key.password",
}


def client_config(config: Config) -> dict[str, Any]:
    """bootstrap.servers plus whatever security settings are configured."""
    settings: dict[str, Any] = {"bootstrap.servers": config.kafka_bootstrap_servers}
    for name, key in _SECURITY.items():
        value = getattr(config, name, "")
        if value:
            settings[key] = value
    return settings


def make_producer(config: Config, **overrides: Any) -> Producer:
    settings = {
        **client_config(config),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **overrides,
    }
    return Producer(settings)


def make_consumer(config: Config, group_id: str, **overrides: Any) -> Consumer:
    settings = {
        **client_config(config),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **overrides,
    }
    return Consumer(settings)


def make_admin(config: Config) -> AdminClient:
    return AdminClient(client_config(config))


def wait_for_broker(
    client: AdminClient | Producer | Consumer,
    *,
    attempts: int = 5,
    timeout_s: float = 5.0,
) -> ClusterMetadata:
    """Cluster metadata, retried with jittered backoff; BrokerUnavailable after `attempts`."""

    def fetch() -> ClusterMetadata:
        metadata = client.list_topics(timeout=timeout_s)
        if not metadata.brokers:
            raise KafkaException("metadata lists no brokers")
        return metadata

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.5, max=5),
        retry=retry_if_exception_type(KafkaException),
        before_sleep=lambda state: log.warning(
            "kafka not reachable, retrying",
            attempt=state.attempt_number,
            error=str(state.outcome.exception()),
        ),
        reraise=True,
    )
    try:
        return retrying(fetch)
    except KafkaException as error:
        raise BrokerUnavailable(
            f"Kafka did not answer a metadata request after {attempts} attempts: {error}"
        ) from None


def partition_count(metadata: ClusterMetadata, topic: str) -> int:
    """Partitions of `topic`, or raise if the topic does not exist."""
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise TopicNotFound(
            f"topic {topic!r} does not exist; create it with: clickstream topics create"
        )
    return len(described.partitions)


# librdkafka's local queue drains at broker speed; 30 s of BufferError means the
# broker is not taking records at all, which is a fault to report, not to wait out.
PRODUCE_QUEUE_FULL_BUDGET_S = 30.0
_QUEUE_POLL_S = 0.05


def produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    *,
    budget_s: float = PRODUCE_QUEUE_FULL_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
    **kwargs: Any,
) -> None:
    """`producer.produce`, waiting out a full local queue for at most `budget_s`.

    The one place that handles back-pressure (BufferError): it serves delivery
    callbacks while it waits, so the queue drains, and raises PublishError once
    the budget is spent.
    """
    deadline = None
    while True:
        try:
            producer.produce(topic, value, **kwargs)
            return
        except BufferError:
            now = clock()
            if deadline is None:
                deadline = now + budget_s
            elif now >= deadline:
                raise PublishError(
                    f"producer queue for {topic} stayed full for {budget_s:.0f} s: "
                    "the broker is not accepting records"
                ) from None
            producer.poll(_QUEUE_POLL_S)
