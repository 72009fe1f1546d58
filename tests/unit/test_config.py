from __future__ import annotations

import argparse

import pytest

from services.common import config as cfg
from services.common.config import ConfigError, Setting

SETTINGS = cfg.unique_settings(
    cfg.SHARED,
    (Setting("WINDOW_SECONDS", 300, "window", parse=cfg.positive_int, aliases=("--window",)),),
)


def parse(argv, environ):
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser, SETTINGS)
    return cfg.load(SETTINGS, parser.parse_args(argv), environ)


def test_default_then_environment_then_flag():
    assert parse([], {}).window_seconds == 300
    assert parse([], {"WINDOW_SECONDS": "60"}).window_seconds == 60
    assert parse(["--window-seconds", "10"], {"WINDOW_SECONDS": "60"}).window_seconds == 10
    assert parse(["--window", "5"], {}).window_seconds == 5


def test_invalid_value_names_its_source():
    with pytest.raises(ConfigError, match="WINDOW_SECONDS='zero'"):
        parse([], {"WINDOW_SECONDS": "zero"})
    with pytest.raises(ConfigError, match="--window-seconds='-5'"):
        parse(["--window-seconds", "-5"], {})


def test_secrets_and_url_passwords_are_masked():
    config = parse(
        [], {"KAFKA_SASL_PASSWORD": "hunter2", "REDIS_URL": "redis://:s3cret@redis:6379/0"}
    )
    shown = config.masked()
    assert shown["KAFKA_SASL_PASSWORD"] == "***"
    assert shown["REDIS_URL"] == "redis://:***@redis:6379/0"
    assert "hunter2" not in repr(shown) and "s3cret" not in repr(shown)
    assert config.kafka_sasl_password == "hunter2"


def test_security_settings_pass_through_to_clients():
    from services.common.kafka import client_config

    config = parse(
        [], {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}
    )
    settings = client_config(config)
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "sasl.username" not in settings


def test_processor_normalises_page_urls_unless_switched_off():
    from services.processor.main import SETTINGS as PROCESSOR

    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser, PROCESSOR)
    assert cfg.load(PROCESSOR, parser.parse_args([]), {}).normalize_page_urls is True
    environ = {"NORMALIZE_PAGE_URLS": "false"}
    assert cfg.load(PROCESSOR, parser.parse_args([]), environ).normalize_page_urls is False
    flag = parser.parse_args(["--normalize-page-urls", "no"])
    assert cfg.load(PROCESSOR, flag, {}).normalize_page_urls is False
