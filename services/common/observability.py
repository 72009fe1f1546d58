"""Prometheus metrics and the health endpoint, shared by every long-running service.

All metric names live here, so dashboards and alert rules have one place to
check against. One small HTTP server per process serves /metrics, /healthz
(the main loop is alive) and /readyz (the service is doing its job).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Producer
EVENTS_PRODUCED = Counter("clickstream_events_produced", "Events delivered to the events topic")
PRODUCE_ERRORS = Counter("clickstream_produce_errors", "Events whose delivery failed")

# Processor
EVENTS_APPLIED = Counter(
    "clickstream_events_applied", "Valid events folded into window state", ["partition"]
)
RECORDS_CONSUMED = Counter(
    "clickstream_records_consumed", "Records read from the events topic", ["partition"]
)
BATCHES = Counter("clickstream_batches", "Partition batches sent to Redis, by outcome", ["result"])
DLQ_RECORDS = Counter(
    "clickstream_dlq_records", "Records sent to the dead-letter topic, by reason", ["reason"]
)
DLQ_PRODUCE_ERRORS = Counter(
    "clickstream_dlq_produce_errors",
    "Dead letters the broker refused or did not confirm (their batch is read again), by error",
    ["error"],
)
LATE_EVENTS = Counter("clickstream_late_events", "Events applied to a window after it closed")
APPLY_SECONDS = Histogram(
    "clickstream_apply_seconds",
    "Latency of one partition batch's apply script in Redis",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
WINDOWS_PUBLISHED = Counter(
    "clickstream_windows_published", "Window revisions published to the metrics topic", ["final"]
)
PUBLISH_DELAY_SECONDS = Histogram(
    "clickstream_window_publish_delay_seconds",
    "Wall time from a window closing (end + grace passed by the watermark) to its record",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
WATERMARK_SECONDS = Gauge(
    "clickstream_partition_watermark_seconds",
    "Event-time watermark of a source partition (epoch seconds)",
    ["partition"],
)
CONSUMER_LAG = Gauge(
    "clickstream_consumer_lag", "Records behind the partition's high watermark", ["partition"]
)
ASSIGNED_PARTITIONS = Gauge(
    "clickstream_assigned_partitions", "Source partitions assigned to this replica"
)
REBALANCES = Counter("clickstream_rebalances", "Partition assignment changes", ["kind"])
FENCE_RESYNCS = Counter(
    "clickstream_fence_resyncs",
    "Times this replica found a partition's fence moved by someone else and sought to it",
    ["partition"],
)

REDIS_FAULTS = Counter(
    "clickstream_redis_faults",
    "Redis calls that failed transiently and were retried, by kind (out_of_memory, ...)",
    ["kind"],
)
KAFKA_FAULTS = Counter(
    "clickstream_kafka_faults",
    "Broker calls that failed and were retried, by operation",
    ["operation"],
)
DEPENDENCY_UP = Gauge(
    "clickstream_dependency_up", "1 while a dependency answers, 0 during an outage", ["dependency"]
)

# Consumer (dashboard)
WINDOWS_RECEIVED = Counter(
    "clickstream_dashboard_windows_received", "Window revisions read from the metrics topic"
)
DASHBOARD_INVALID_RECORDS = Counter(
    "clickstream_dashboard_invalid_records",
    "Metrics records the dashboard skipped (undecodable, invalid, far-future window), by reason",
    ["reason"],
)

# HTTP API
API_REQUESTS = Counter(
    "clickstream_api_requests",
    "HTTP API requests, by route template and status",
    ["route", "status"],
)
API_REQUEST_SECONDS = Histogram(
    "clickstream_api_request_seconds",
    "HTTP API request latency, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class Health:
    """Liveness is a heartbeat from the main loop; readiness is a flag the service sets,
    withdrawn while any dependency it needs (Redis, the broker) is blocked."""

    def __init__(self, stale_after_s: float = 30.0):
        self.stale_after_s = stale_after_s
        self._beat = time.monotonic()
        self._started = False
        self._blocked: set[str] = set()

    @property
    def ready(self) -> bool:
        return self._started and not self._blocked

    @ready.setter
    def ready(self, value: bool) -> None:
        self._started = value

    def block(self, dependency: str) -> None:
        self._blocked.add(dependency)
        DEPENDENCY_UP.labels(dependency).set(0)

    def unblock(self, dependency: str) -> None:
        self._blocked.discard(dependency)
        DEPENDENCY_UP.labels(dependency).set(1)

    def blocked(self) -> frozenset[str]:
        return frozenset(self._blocked)

    def beat(self) -> None:
        self._beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._beat < self.stale_after_s


def serve(port: int, health: Health, host: str = "0.0.0.0") -> Callable[[], None]:
    """Serve /metrics, /healthz and /readyz on a daemon thread; returns a stop function."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"main loop stalled\n")
            elif self.path == "/readyz":
                ok = health.ready and health.alive()
                blocked = ", ".join(sorted(health.blocked()))
                reason = f"not ready: waiting for {blocked}\n" if blocked else "not ready\n"
                self._reply(200 if ok else 503, b"ready\n" if ok else reason.encode())
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep access logs out of service logs
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="http-metrics", daemon=True)
    thread.start()
    return server.shutdown
