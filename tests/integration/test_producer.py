from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from services.common import config as cfg
from services.common.kafka import BrokerUnavailable, make_admin, wait_for_broker
from services.common.schema import decode_event
from services.producer import main as producer
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def test_produced_events_arrive_once_each_and_users_keep_their_partition(pipeline):
    config = pipeline.config(
        producer.SETTINGS, PRODUCER_RATE="max", PRODUCER_COUNT="20000", PRODUCER_SEED="42"
    )
    assert producer.run(config) == 0

    records = read_topic(config, config.events_topic, expected=20_000)
    events = [decode_event(record.value()) for record in records]
    ids = Counter(event.event_id for event in events)
    assert len(records) == 20_000
    assert len(ids) == 20_000 and max(ids.values()) == 1  # none missing, none duplicated
    assert {record.partition() for record in records} == set(range(pipeline.partitions))
    partitions_of_user = defaultdict(set)
    for record, event in zip(records, events, strict=True):
        assert record.key().decode() == event.user_id
        partitions_of_user[event.user_id].add(record.partition())
    assert all(len(partitions) == 1 for partitions in partitions_of_user.values())


def test_unreachable_broker_fails_with_a_clear_error():
    config = cfg.load(cfg.SHARED, environ={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    with pytest.raises(BrokerUnavailable, match="did not answer a metadata request"):
        wait_for_broker(make_admin(config), attempts=2, timeout_s=1)


def test_topics_create_is_idempotent_and_reports_differences(pipeline):
    from services.common.topics import TopicSpec, ensure_topics, pipeline_topics
    from services.common.topics_cli import SETTINGS as TOPIC_SETTINGS

    config = pipeline.config(TOPIC_SETTINGS)
    admin = make_admin(config)
    again = ensure_topics(admin, pipeline_topics(config), replication_factor=1)
    assert [report.status for report in again] == ["exists", "exists", "exists"]
    wrong = TopicSpec(config.events_topic, 12, {"retention.ms": "1000"})
    (report,) = ensure_topics(admin, [wrong], replication_factor=1)
    assert report.status == "differs"
    assert "partitions: expected 12, found 6" in report.differences
    assert any(line.startswith("retention.ms") for line in report.differences)
