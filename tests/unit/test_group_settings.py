"""The processor's consumer-group settings per GROUP_PROTOCOL are ones librdkafka accepts."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

from services.common import config as cfg
from services.processor.settings import SETTINGS, group_settings


def processor_config(**environ: str) -> cfg.Config:
    return cfg.load(cfg.unique_settings(cfg.SHARED, SETTINGS), environ=environ)


def consumer_accepts(settings: dict) -> None:
    # librdkafka validates the configuration when the consumer is created, before any
    # connection: an unreachable bootstrap server is enough.
    consumer = Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", **settings})
    consumer.close()


@pytest.mark.parametrize("instance_id", ["", "processor-0"])
def test_kip848_consumer_gets_no_classic_only_setting(instance_id):
    config = processor_config(GROUP_PROTOCOL="consumer", GROUP_INSTANCE_ID=instance_id)
    settings = group_settings(config)
    assert settings["group.protocol"] == "consumer"
    assert not {"session.timeout.ms", "heartbeat.interval.ms"} & set(settings)
    assert settings.get("group.instance.id", "") == instance_id
    consumer_accepts(settings)


def test_classic_consumer_heartbeats_six_times_per_session():
    settings = group_settings(processor_config(SESSION_TIMEOUT_MS="6000"))
    assert settings == {
        "group.protocol": "classic",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    }
    consumer_accepts(settings)


def test_unknown_group_protocol_is_refused():
    with pytest.raises(cfg.ConfigError, match="GROUP_PROTOCOL"):
        processor_config(GROUP_PROTOCOL="eager")
