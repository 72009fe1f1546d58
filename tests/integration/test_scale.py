"""More partitions than the original six, with as many replicas, on the real broker and Redis."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaException

from services.common.kafka import make_admin
from statestore import StateStore
from tests.integration.harness import (
    PAST,
    WINDOW_S,
    Replicas,
    all_final,
    applied,
    assert_ground_truth,
    dataset,
    expected_windows,
    produce,
    read_windows,
    wait_until,
)

pytestmark = pytest.mark.integration


def group_spread(admin, group: str) -> list[int]:
    """Partitions per member of a consumer group, as the broker describes it."""
    try:
        (future,) = admin.describe_consumer_groups([group]).values()
        description = future.result()
    except KafkaException:
        return []  # not created yet
    return sorted(len(member.assignment.topic_partitions) for member in description.members)


@pytest.mark.events_partitions(12)
def test_twelve_partitions_with_twelve_kip848_replicas_publish_exact_windows(pipeline, tmp_path):
    config = pipeline.config()
    group = f"test-scale-{uuid.uuid4().hex[:8]}"
    # Replicas use about 60 MB each: twelve fit, started together so they join at once.
    replicas = Replicas(pipeline.environ, tmp_path, CONSUMER_GROUP=group, GROUP_PROTOCOL="consumer")
    events = dataset(seed=31, start=PAST, seconds=4 * WINDOW_S, events=12_000, users=600)
    expected = expected_windows(events)
    store = StateStore.from_url(
        config.redis_url, pipeline.environ["STATE_NAMESPACE"], config.events_topic
    )
    replicas.start_all(12)
    try:
        # Traffic once every replica holds one partition: twelve really share the work.
        admin = make_admin(config)
        wait_until(
            lambda: group_spread(admin, group) == [1] * 12,
            "twelve replicas never held one partition each",
            180,
        )
        produce(config, events)
        published = read_windows(config, all_final(expected), 180)
        applied_count = applied(store, pipeline.partitions)
        fences = store.partition_states(range(pipeline.partitions))
    finally:
        codes = replicas.stop_all()
    assert codes == [0] * 12, replicas.logs()
    assert applied_count == len(events)
    # Every partition carried records and was applied by one of the replicas.
    assert all(state.fence >= 0 and state.owner for state in fences.values())
    assert_ground_truth(published, expected)
