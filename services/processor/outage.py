"""Waiting out a dependency that stopped answering, on a stated budget.

A broker restart makes dead-letter confirmations, window publications and
log-end queries fail for a while. The processor keeps its place (the fence does
not move past an unconfirmed dead letter; a claimed revision stays pending),
reports itself not ready, and tries again. Only an outage longer than the
budget ends the process, with a message that says what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.common.errors import BrokerUnavailable
from services.common.logging import get_logger
from services.common.observability import KAFKA_FAULTS, REDIS_FAULTS, Health
from statestore.retry import FaultHooks

log = get_logger("processor.outage")


class Outage:
    """Continuous failure of one dependency, measured against `budget_s`."""

    def __init__(
        self,
        dependency: str,
        budget_s: float,
        health: Health,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.dependency = dependency
        self.budget_s = budget_s
        self.health = health
        self._clock = clock
        self.started_at: float | None = None

    def failed(self, operation: str, error: Exception, **context: object) -> None:
        """Record a failure; raise BrokerUnavailable once failures have lasted the budget."""
        now = self._clock()
        KAFKA_FAULTS.labels(operation).inc()
        if self.started_at is None:
            self.started_at = now
            self.health.block(self.dependency)
        lasted_s = now - self.started_at
        log.warning(
            f"{self.dependency} call failed, will retry",
            operation=operation,
            error=str(error),
            failing_for_s=round(lasted_s, 1),
            budget_s=self.budget_s,
            **context,
        )
        if lasted_s >= self.budget_s:
            raise BrokerUnavailable(
                f"{self.dependency} failed for {lasted_s:.0f} s (budget {self.budget_s:.0f} s), "
                f"last during {operation}: {error}"
            ) from error

    def succeeded(self) -> None:
        if self.started_at is not None:
            log.info(
                f"{self.dependency} answering again",
                outage_s=round(self._clock() - self.started_at, 1),
            )
            self.started_at = None
            self.health.unblock(self.dependency)


def redis_fault_hooks(health: Health) -> FaultHooks:
    """While Redis is away: not ready, still alive (the loop is waiting, not stuck)."""

    def on_fault(kind: str) -> None:
        REDIS_FAULTS.labels(kind).inc()
        health.block("redis")

    return FaultHooks(
        on_fault=on_fault,
        on_waiting=health.beat,
        on_recovered=lambda _outage_s: health.unblock("redis"),
    )
