"""`clickstream api`: serve the HTTP API and the web view with uvicorn.

The service reads Redis only (never the processors): published windows, their
index and rollup sketches kept by the emitter, and live window state for the
window in progress and windows not final yet. See services/api/app.py.
"""

from __future__ import annotations

import uvicorn

from services.common import config as cfg
from services.common.config import Config, Setting, positive_float, positive_int
from services.common.logging import get_logger

log = get_logger("api")


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be zero or more")
    return value


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip() for origin in text.split(",") if origin.strip())


SETTINGS = (
    cfg.STATE_NAMESPACE,
    Setting("API_HOST", "127.0.0.1", "address the HTTP API listens on (the chart sets 0.0.0.0)"),
    Setting("API_PORT", 8000, "port of the HTTP API", parse=positive_int),
    Setting(
        "API_TOKEN",
        "",
        "bearer token every route but the probes and the page shell requires (empty: none)",
        secret=True,
    ),
    Setting(
        "API_CORS_ORIGINS",
        "",
        "comma-separated origins allowed by CORS (empty: CORS closed)",
        parse=_origins,
    ),
    Setting(
        "API_REQUEST_TIMEOUT_SECONDS",
        5.0,
        "a request still running after this answers 504",
        parse=positive_float,
    ),
    Setting(
        "API_REDIS_TIMEOUT_SECONDS",
        2.0,
        "socket timeout of Redis calls; an unreachable Redis answers 503",
        parse=positive_float,
    ),
    Setting("API_MAX_PAGE", 500, "most windows one /v1/windows page returns", parse=positive_int),
    Setting(
        "API_MAX_RANGE_DAYS",
        8.0,
        "longest from..to range a request may ask for",
        parse=positive_float,
    ),
    Setting("API_MAX_BUCKETS", 2000, "most buckets one rollup returns", parse=positive_int),
    Setting(
        "API_LIVE_CACHE_SECONDS",
        1.0,
        "a rollup bucket with windows not final yet is merged from live state at most this "
        "often per process (0: on every request)",
        parse=non_negative_float,
    ),
    Setting("API_ACCESS_LOG", False, "log every request (costs throughput)", parse=cfg.parse_bool),
)


def run(config: Config) -> int:
    from services.api.app import create_app  # FastAPI loads only for this command

    app = create_app(config)
    log.info("api listening", url=f"http://{config.api_host}:{config.api_port}/")
    uvicorn.run(
        app,
        host=config.api_host,
        port=config.api_port,
        access_log=config.api_access_log,
        log_config=None,  # structlog is configured by the CLI
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    return 0
