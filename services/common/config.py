"""Service configuration: environment variables first, CLI flags override them.

Each service declares the settings it reads as a tuple of `Setting`s; `load`
builds one immutable `Config` from the environment and argv, validated once at
start-up, and that object is passed down. No other module reads os.environ.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One configuration value: its environment variable, flag, default and parser."""

    env: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.env.lower()

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


class Config:
    """The effective configuration of one service; attribute access by setting name."""

    def __init__(self, settings: Sequence[Setting], values: Mapping[str, Any]):
        self._settings = tuple(settings)
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Config:
        unknown = set(changes) - set(self._values)
        if unknown:
            raise AttributeError(f"unknown settings: {sorted(unknown)}")
        return Config(self._settings, {**self._values, **changes})

    def masked(self) -> dict[str, Any]:
        """The values to print at start-up, secrets hidden."""
        shown = {}
        for setting in self._settings:
            value = self._values[setting.name]
            if setting.secret and value:
                value = "***"
            elif isinstance(value, str) and "://" in value:
                value = mask_url_password(value)
            shown[setting.env] = value
        return shown


# The userinfo runs to the last "@": a raw password may hold "/", "@", "#" or ":", and a
# host, port or database never holds "@". A `password=` query argument is masked too.
_URL_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:).*@")
_URL_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*")


def mask_url_password(url: str) -> str:
    # The query first: an "@" in its password must not pass for the end of a userinfo.
    masked = _URL_QUERY_PASSWORD.sub(r"\1***", url)
    return _URL_USERINFO_PASSWORD.sub(r"\1***@", masked, count=1)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def unique_settings(*groups: Iterable[Setting]) -> tuple[Setting, ...]:
    """Concatenate setting groups; a later group may redefine an earlier setting."""
    by_env: dict[str, Setting] = {}
    for group in groups:
        for setting in group:
            by_env[setting.env] = setting
    return tuple(by_env.values())


def add_arguments(parser: argparse.ArgumentParser, settings: Sequence[Setting]) -> None:
    """One flag per setting; its default stays None so the environment can win over defaults."""
    for setting in settings:
        default = "(secret)" if setting.secret else setting.default
        parser.add_argument(
            *setting.aliases,
            setting.flag,
            dest=setting.name,
            default=None,
            choices=setting.choices,
            metavar=setting.env,
            # argparse %-formats help text: a literal "50%" must not read as a placeholder.
            help=f"{setting.help} [env {setting.env}, default {default}]".replace("%", "%%"),
        )


def load(
    settings: Sequence[Setting],
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve each setting: flag, else environment variable, else default."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in settings:
        raw = getattr(args, setting.name, None) if args is not None else None
        source = setting.flag
        if raw is None and setting.env in environ:
            raw, source = environ[setting.env], setting.env
        if raw is None:
            values[setting.name] = setting.default
            continue
        if setting.choices and raw not in setting.choices:
            raise ConfigError(f"{source}={raw!r}: expected one of {', '.join(setting.choices)}")
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{source}={raw!r}: {error}") from None
    return Config(settings, values)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be zero or more")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


# Settings every service shares.
KAFKA = (
    Setting("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers"),
    Setting("KAFKA_SECURITY_PROTOCOL", "", "security.protocol (PLAINTEXT, SSL, SASL_SSL, ...)"),
    Setting("KAFKA_SASL_MECHANISM", "", "sasl.mechanism (PLAIN, SCRAM-SHA-512, ...)"),
    Setting("KAFKA_SASL_USERNAME", "", "sasl.username"),
    Setting("KAFKA_SASL_PASSWORD", "", "sasl.password", secret=True),
    Setting("KAFKA_SSL_CA_LOCATION", "", "ssl.ca.location"),
    Setting("KAFKA_SSL_CERTIFICATE_LOCATION", "", "ssl.certificate.location"),
    Setting("KAFKA_SSL_KEY_LOCATION", "", "ssl.key.location"),
    Setting("KAFKA_SSL_KEY_PASSWORD", "", "ssl.key.password", secret=True),
)
TOPICS = (
    Setting("EVENTS_TOPIC", "clickstream-events", "topic of raw clickstream events"),
    Setting("METRICS_TOPIC", "clickstream-metrics", "topic of per-window metrics"),
    Setting("DLQ_TOPIC", "clickstream-events-dlq", "dead-letter topic for rejected events"),
)
REDIS = (
    Setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis holding window state (rediss:// for TLS); give a password as REDIS_PASSWORD",
    ),
    Setting(
        "REDIS_CLUSTER",
        False,
        "REDIS_URL names one node of a Redis Cluster; the client discovers the others",
        parse=parse_bool,
    ),
    Setting("REDIS_USERNAME", "", "Redis ACL user (Redis 6+); empty: the default user"),
    Setting("REDIS_PASSWORD", "", "Redis AUTH password; empty: no AUTH", secret=True),
    Setting(
        "REDIS_TLS_CA_FILE", "", "CA certificate (PEM) for a rediss:// server; empty: system CAs"
    ),
)
LOGGING = (
    Setting(
        "LOG_LEVEL",
        "info",
        "log level",
        parse=str.lower,
        choices=("debug", "info", "warning", "error"),
    ),
    Setting(
        "LOG_FORMAT",
        "auto",
        "auto: readable on a TTY, JSON otherwise",
        choices=("auto", "json", "console"),
    ),
)
SHARED = unique_settings(KAFKA, TOPICS, REDIS, LOGGING)

# The processor's settings that other services and tools read too: one definition, so
# the dashboard and the load generator can never assume another default.
WINDOW_SECONDS = Setting("WINDOW_SECONDS", 300, "tumbling window size", parse=positive_int)
GRACE_SECONDS = Setting(
    "GRACE_SECONDS", 10, "event time a window stays open after its end", parse=non_negative_int
)
ALLOWED_LATENESS_SECONDS = Setting(
    "ALLOWED_LATENESS_SECONDS",
    3600,
    "late events within this much event time behind the watermark amend their window",
    parse=non_negative_int,
)
STATE_NAMESPACE = Setting(
    "STATE_NAMESPACE", "clickstream", "prefix that keeps deployments apart in Redis"
)
PROCESSOR_GROUP = Setting(
    "CONSUMER_GROUP", "clickstream-processor", "consumer group of the processors"
)
REDIS_RETRY_SECONDS = Setting(
    "REDIS_RETRY_SECONDS",
    120.0,
    "how long Redis may fail continuously (restart, failover, out of memory) before the "
    "service exits; meanwhile it waits and reports not ready",
    parse=positive_float,
)


def redis_options(config: Config) -> dict[str, str | bool]:
    """The credentials, TLS CA and cluster mode for StateStore.from_url, from REDIS_*.

    The password travels apart from REDIS_URL so that no character in it can change
    where the URL points, and so that a Secret can feed it to a pod unchanged.
    """
    url = config.redis_url
    if config.redis_password and mask_url_password(url) != url:
        # redis-py lets a password in the URL win silently; two sources is a mistake.
        raise ConfigError("REDIS_PASSWORD is set and REDIS_URL carries a password too: keep one")
    if config.redis_tls_ca_file and not url.startswith("rediss://"):
        raise ConfigError(
            f"REDIS_TLS_CA_FILE is set but REDIS_URL={mask_url_password(url)!r} is not rediss://"
        )
    options = {
        "username": config.redis_username,
        "password": config.redis_password,
        "tls_ca_file": config.redis_tls_ca_file,
        "cluster": config.redis_cluster,
    }
    return {name: value for name, value in options.items() if value}


ROLLUP_RETENTION_DAYS = Setting(
    "ROLLUP_RETENTION_DAYS",
    7,
    "days the published windows and final windows' rollup sketches are kept in Redis",
    parse=positive_float,
)
