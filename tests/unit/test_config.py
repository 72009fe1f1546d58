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


@pytest.mark.parametrize(
    "password", ["s3cret", "a/b", "p@ss", "x#y", "a:b", "/@#:?%&", "@", "ends-with/"]
)
@pytest.mark.parametrize("user", ["", "clickstream"])
def test_url_password_with_url_delimiters_is_masked_whole(password, user):
    url = f"rediss://{user}:{password}@redis.example:6380/2"
    assert cfg.mask_url_password(url) == f"rediss://{user}:***@redis.example:6380/2"


def test_url_password_in_query_and_urls_without_password_are_left_readable():
    assert cfg.mask_url_password("redis://r:6379/0?password=a/b@c&db=1") == (
        "redis://r:6379/0?password=***&db=1"
    )
    for url in ("redis://redis:6379/0", "redis://user@redis:6379", "unix:///run/redis.sock"):
        assert cfg.mask_url_password(url) == url


def test_redis_password_is_its_own_masked_setting_passed_to_the_store():
    config = parse(
        [],
        {
            "REDIS_URL": "rediss://cache.example:6380/0",
            "REDIS_USERNAME": "clickstream",
            "REDIS_PASSWORD": "p@ss/w#rd",
            "REDIS_TLS_CA_FILE": "/etc/clickstream/redis-ca/ca.crt",
        },
    )
    assert config.masked()["REDIS_PASSWORD"] == "***"
    assert "p@ss" not in repr(config.masked())
    assert cfg.redis_options(config) == {
        "username": "clickstream",
        "password": "p@ss/w#rd",
        "tls_ca_file": "/etc/clickstream/redis-ca/ca.crt",
    }
    assert cfg.redis_options(parse([], {})) == {}


def test_store_from_config_hands_credentials_and_ca_to_a_tls_connection():
    from statestore import StateStore

    config = parse(
        [],
        {
            "REDIS_URL": "rediss://cache.example:6380/2",
            "REDIS_USERNAME": "clickstream",
            "REDIS_PASSWORD": "p@ss/w#rd",
            "REDIS_TLS_CA_FILE": "/ca.pem",
        },
    )
    store = StateStore.from_url(config.redis_url, "ns", "events", **cfg.redis_options(config))
    pool = store.redis.connection_pool  # nothing connects until the first command
    assert pool.connection_class.__name__ == "SSLConnection"
    assert {k: pool.connection_kwargs[k] for k in ("host", "port", "db")} == {
        "host": "cache.example",
        "port": 6380,
        "db": 2,
    }
    assert pool.connection_kwargs["username"] == "clickstream"
    assert pool.connection_kwargs["password"] == "p@ss/w#rd"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"


def test_redis_options_refuse_two_passwords_and_a_ca_without_tls():
    with pytest.raises(ConfigError, match="REDIS_URL carries a password too"):
        cfg.redis_options(parse([], {"REDIS_URL": "redis://:a@r:6379/0", "REDIS_PASSWORD": "b"}))
    with pytest.raises(ConfigError, match="not rediss://"):
        cfg.redis_options(parse([], {"REDIS_TLS_CA_FILE": "/ca.crt"}))


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


def test_redis_cluster_mode_reaches_the_store_and_the_replicas_a_tool_starts():
    from load.fleet import processor_env

    config = parse([], {"REDIS_URL": "redis://node-2:7001/0", "REDIS_CLUSTER": "true"})
    assert cfg.redis_options(config) == {"cluster": True}
    assert processor_env(config)["REDIS_CLUSTER"] == "True"
    assert parse([], processor_env(config)).redis_cluster is True
