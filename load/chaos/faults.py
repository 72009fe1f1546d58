"""Infrastructure faults of a local chaos run: its own Redis and its own broker.

Each fault runs once on its own thread at a fixed share of the replay, so replica
kills go on meanwhile: a Redis outage at a third of the replay
(CHAOS_REDIS=outage: SIGTERM, down CHAOS_REDIS_OUTAGE_SECONDS, restart from the
AOF; CHAOS_REDIS=restart: SIGKILL and restart at once; CHAOS_REDIS=failover: a
master of the shared Redis Cluster failed over to its replica, load.chaos.cluster),
a broker restart at two thirds (CHAOS_BROKER=restart: SIGKILL, restart from its
log directory). How long each was down is measured from the stop to the server
answering again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from load.chaos.report import ChaosReport
from load.kafka_server import KafkaServer
from load.redis_server import RedisServer
from services.common.config import Config
from services.common.logging import get_logger

log = get_logger("chaos")

REDIS_AT = 1 / 3  # shares of the replay's planned duration
BROKER_AT = 2 / 3
JOIN_TIMEOUT_S = 180.0


class InfrastructureFaults:
    def __init__(
        self,
        config: Config,
        report: ChaosReport,
        redis_server: RedisServer | None,
        kafka_server: KafkaServer | None,
        cluster_failover: Callable[[], str] | None = None,
    ):
        self.report = report
        replay_s = config.chaos_windows * config.chaos_window_seconds / config.chaos_speed
        # (seconds into the replay, what, action); anchored at the first tick, which the
        # scenario gives as the replay starts (generating the dataset takes a while).
        self.planned: list[tuple[float, str, Callable[[], str]]] = []
        if redis_server is not None and config.chaos_redis == "outage":
            seconds = config.chaos_redis_outage_seconds
            self.planned.append(
                (replay_s * REDIS_AT, "redis", lambda: _redis_outage(redis_server, seconds))
            )
        elif redis_server is not None and config.chaos_redis == "restart":
            self.planned.append(
                (replay_s * REDIS_AT, "redis", lambda: _redis_restart(redis_server))
            )
        elif cluster_failover is not None and config.chaos_redis == "failover":
            self.planned.append((replay_s * REDIS_AT, "redis", cluster_failover))
        if kafka_server is not None and config.chaos_broker == "restart":
            self.planned.append(
                (replay_s * BROKER_AT, "broker", lambda: _broker_restart(kafka_server))
            )
        self.started: float | None = None
        self.threads: list[threading.Thread] = []

    def tick(self) -> None:
        """Start every fault that is due."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        for due in [fault for fault in self.planned if self.started + fault[0] <= now]:
            self.planned.remove(due)
            _at, what, action = due
            thread = threading.Thread(
                target=self._run, args=(what, action), name=f"chaos-{what}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _run(self, what: str, action: Callable[[], str]) -> None:
        try:
            outcome = action()
        except Exception as error:  # the run goes on; the verdict fails on it
            log.error("infrastructure fault failed", fault=what, error=str(error))
            self.report.fault_failures.append(f"{what}: {error}")
            return
        if what == "redis":
            self.report.redis_restarts = outcome
        else:
            self.report.broker_restarts = outcome

    def finish(self) -> None:
        """Wait for faults under way; one never started (a short replay) is a failure."""
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT_S)
        for _at, what, _action in self.planned:
            self.report.fault_failures.append(f"{what}: the run ended before it was due")
        self.planned.clear()


def _redis_outage(server: RedisServer, seconds: float) -> str:
    log.info("redis outage starting (SIGTERM)", port=server.port, seconds=seconds)
    started = time.monotonic()
    server.outage(seconds)
    down = time.monotonic() - started
    log.info("redis back after outage (AOF reload)", port=server.port, down_s=round(down, 1))
    return f"1 outage, down {down:.1f} s (own Redis, SIGTERM, AOF reload)"


def _redis_restart(server: RedisServer) -> str:
    log.info("restarting redis (SIGKILL, AOF reload)", port=server.port)
    server.restart()
    return f"{server.restarts} (own Redis, SIGKILL + AOF)"


def _broker_restart(server: KafkaServer) -> str:
    log.info("restarting the chaos broker (SIGKILL)", port=server.port)
    started = time.monotonic()
    server.kill()
    server.start()
    server.restarts += 1
    down = time.monotonic() - started
    log.info("chaos broker back", port=server.port, down_s=round(down, 1))
    return f"{server.restarts}, down {down:.1f} s (own KRaft broker, SIGKILL)"
