"""Riding out Redis faults: retry on a time budget, then a typed error.

A Redis restart, a failover or a full memory stalls the pipeline; it must not
end it (DESIGN.md guarantee 8). Every store operation runs through
`RedisRetry.call`, which retries transient failures with jittered exponential
backoff until `budget_s` of continuous failure has passed, then raises
StateStoreUnavailable with what happened.

Retrying is safe because every write is fenced: an apply script that ran but
whose answer was lost is refused as stale when it is sent again, and a claim or
commit of a revision is a no-op the second time.

Each attempt calls the operation afresh, so a pipeline is rebuilt inside the
retry (redis-py empties a pipeline's command stack when it executes, even when
it fails: re-executing the same object would send nothing).

Time is injected (`clock`, `sleep`) so tests can drive minutes of outage in
milliseconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from services.common.errors import StateStoreUnavailable
from services.common.logging import get_logger

log = get_logger("statestore.retry")

T = TypeVar("T")

# Answers that mean "not now" rather than "never": a server loading its AOF, a replica
# promoted mid-call, a cluster slot moving, memory full under noeviction.
_TRANSIENT = (
    redis.ConnectionError,  # includes BusyLoadingError
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # includes MasterDownError
    # A cluster client out of redirections, or with no node for a slot: both happen
    # while a failover moves slots and end when the new slot map is learned.
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
)
_TRANSIENT_PREFIXES = ("LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "OOM")

DEFAULT_BUDGET_S = 120.0
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 5.0


def is_transient(error: BaseException) -> bool:
    if isinstance(error, _TRANSIENT):
        return True
    return isinstance(error, redis.ResponseError) and str(error).startswith(_TRANSIENT_PREFIXES)


def fault_kind(error: BaseException) -> str:
    """A short, countable label for a transient failure."""
    if isinstance(error, redis.exceptions.OutOfMemoryError) or str(error).startswith("OOM"):
        return "out_of_memory"
    if isinstance(error, redis.exceptions.BusyLoadingError):
        return "loading"
    if isinstance(error, redis.TimeoutError):
        return "timeout"
    if isinstance(error, redis.ConnectionError):
        return "connection"
    return "unavailable"


@dataclass
class FaultHooks:
    """What the service wants to know while Redis is away (readiness, liveness, metrics)."""

    on_fault: Callable[[str], None] = lambda kind: None
    on_waiting: Callable[[], None] = lambda: None  # called before each backoff sleep
    on_recovered: Callable[[float], None] = lambda outage_s: None


class RedisRetry:
    def __init__(
        self,
        budget_s: float = DEFAULT_BUDGET_S,
        hooks: FaultHooks | None = None,
        *,
        describe: str = "redis",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ):
        self.budget_s = budget_s
        self.hooks = hooks or FaultHooks()
        self.describe = describe
        self._clock, self._sleep, self._jitter = clock, sleep, jitter

    def call(self, operation: Callable[[], T], what: str = "") -> T:
        """Run `operation` until it succeeds or Redis has failed for `budget_s`."""
        outage_started: float | None = None
        attempt = 0
        while True:
            try:
                result = operation()
            # SlotNotCoveredError is the one cluster failure that is not a RedisError.
            except (redis.RedisError, redis.exceptions.SlotNotCoveredError) as error:
                if not is_transient(error):
                    raise
                now = self._clock()
                kind = fault_kind(error)
                if outage_started is None:
                    outage_started = now
                    log.warning(
                        "redis unavailable, waiting", operation=what, fault=kind, error=str(error)
                    )
                self.hooks.on_fault(kind)
                waited_s = now - outage_started
                if waited_s >= self.budget_s:
                    raise StateStoreUnavailable(
                        f"{self.describe} failed for {waited_s:.0f} s (budget "
                        f"REDIS_RETRY_SECONDS={self.budget_s:.0f}) during {what or 'a call'}: "
                        f"{kind}: {error}"
                    ) from error
                attempt += 1
                if attempt % 10 == 0:
                    log.warning(
                        "redis still unavailable",
                        operation=what,
                        fault=kind,
                        waited_s=round(waited_s, 1),
                        budget_s=self.budget_s,
                    )
                self.hooks.on_waiting()
                self._sleep(self._backoff_s(attempt, self.budget_s - waited_s))
                continue
            if outage_started is not None:
                outage_s = self._clock() - outage_started
                log.info("redis available again", operation=what, outage_s=round(outage_s, 1))
                self.hooks.on_recovered(outage_s)
            return result

    def _backoff_s(self, attempt: int, remaining_s: float) -> float:
        """Full jitter: uniform in (0, min(cap, first * 2^attempt)], never past the budget."""
        ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(attempt, 16))
        return max(0.001, min(ceiling * self._jitter(), max(remaining_s, 0.001)))
