"""Fixtures shared by every test layer: the real Kafka and Redis, and per-test topics."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from services.common import config as cfg
from services.common.config import Config, Setting
from tests.backends import Cluster, Stack, provide, provide_cluster


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with provide(os.environ) as provided:
        yield provided


@dataclass
class Pipeline:
    """One test's own topics and state namespace on the shared stack."""

    stack: Stack
    environ: dict[str, str]

    @property
    def partitions(self) -> int:
        """The events topic's partition count (EVENTS_PARTITIONS)."""
        return int(self.environ["EVENTS_PARTITIONS"])

    def config(self, *settings: Sequence[Setting], **environ: str) -> Config:
        """A service Config as the CLI would build it from this environment plus `environ`."""
        return cfg.load(
            cfg.unique_settings(cfg.SHARED, *settings), environ={**self.environ, **environ}
        )


def pipeline_environ(stack: Stack, run_id: str, partitions: int = 6) -> dict[str, str]:
    return {
        "EVENTS_PARTITIONS": str(partitions),
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "REDIS_URL": stack.redis_url,
        "EVENTS_TOPIC": f"test-{run_id}-events",
        "METRICS_TOPIC": f"test-{run_id}-metrics",
        "DLQ_TOPIC": f"test-{run_id}-dlq",
        "STATE_NAMESPACE": f"test-{run_id}",
        "LOG_FORMAT": "console",
    }


@pytest.fixture
def pipeline(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """Create the pipeline's three topics for this test; delete them afterwards.

    `@pytest.mark.events_partitions(12)` gives the events topic 12 partitions.
    """
    marker = request.node.get_closest_marker("events_partitions")
    partitions = marker.args[0] if marker else 6
    environ = pipeline_environ(stack, uuid.uuid4().hex[:10], partitions)
    yield from _with_topics(Pipeline(stack, environ))


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    with provide_cluster(os.environ) as provided:
        yield provided


@pytest.fixture
def cluster_pipeline(stack: Stack, redis_cluster: Cluster) -> Iterator[Pipeline]:
    """Like `pipeline`, with the state on the Redis Cluster (REDIS_CLUSTER=true)."""
    on_cluster = Stack(stack.kafka_bootstrap_servers, redis_cluster.url, redis_cluster.source)
    environ = {**pipeline_environ(on_cluster, uuid.uuid4().hex[:10]), "REDIS_CLUSTER": "true"}
    yield from _with_topics(Pipeline(on_cluster, environ))


def _with_topics(test_pipeline: Pipeline) -> Iterator[Pipeline]:
    from services.common.kafka import make_admin
    from services.common.topics import ensure_topics, pipeline_topics
    from services.common.topics_cli import SETTINGS as TOPIC_SETTINGS

    config = test_pipeline.config(TOPIC_SETTINGS)
    admin = make_admin(config)
    specs = pipeline_topics(config)
    ensure_topics(admin, specs, replication_factor=1)
    yield test_pipeline
    for future in admin.delete_topics([spec.name for spec in specs]).values():
        with contextlib.suppress(Exception):  # a topic the test already removed
            future.result()
