"""RedisRetry: transient faults are waited out on a budget, with a clock driven by the test."""

import pytest
import redis

from services.common.errors import StateStoreUnavailable
from statestore.retry import FaultHooks, RedisRetry, is_transient


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Outage:
    """An operation that fails with `error` until the clock reaches `until_s`."""

    def __init__(self, clock: Clock, until_s: float, error: Exception):
        self.clock, self.until_s, self.error = clock, until_s, error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.clock.now < self.until_s:
            raise self.error
        return "answer"


def retry_with(clock: Clock, budget_s: float, **hooks) -> RedisRetry:
    return RedisRetry(
        budget_s, FaultHooks(**hooks), clock=clock, sleep=clock.sleep, jitter=lambda: 1.0
    )


def test_an_outage_shorter_than_the_budget_is_waited_out_and_reported_once_over():
    clock = Clock()
    faults, recovered, waits = [], [], []
    retry = retry_with(
        clock,
        120,
        on_fault=faults.append,
        on_recovered=recovered.append,
        on_waiting=lambda: waits.append(clock.now),
    )
    outage = Outage(clock, 12.0, redis.ConnectionError("Connection refused"))
    assert retry.call(outage, "apply") == "answer"
    assert clock.now >= 12.0 and outage.calls > 2
    assert set(faults) == {"connection"}
    assert len(recovered) == 1 and recovered[0] >= 12.0
    assert len(waits) == outage.calls - 1  # liveness is fed before every sleep


def test_an_outage_past_the_budget_raises_state_store_unavailable_saying_what_happened():
    clock = Clock()
    retry = retry_with(clock, 30)
    outage = Outage(clock, 1e9, redis.TimeoutError("Timeout reading from socket"))
    with pytest.raises(StateStoreUnavailable, match=r"failed for 3\d s .*timeout"):
        retry.call(outage, "apply")
    assert 30 <= clock.now < 36  # backoff never sleeps far past the budget


def test_out_of_memory_is_backed_off_and_counted_as_such():
    clock = Clock()
    faults = []
    retry = retry_with(clock, 60, on_fault=faults.append)
    oom = redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > maxmemory")
    assert retry.call(Outage(clock, 2.0, oom)) == "answer"
    assert set(faults) == {"out_of_memory"}


def test_a_programming_error_is_not_retried():
    clock = Clock()
    retry = retry_with(clock, 60)
    wrong = Outage(clock, 1e9, redis.ResponseError("WRONGTYPE Operation against a key"))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        retry.call(wrong)
    assert wrong.calls == 1 and clock.now == 0.0


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        redis.ResponseError("MASTERDOWN Link with MASTER is down"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
    ],
)
def test_failover_and_restart_answers_are_transient(error):
    assert is_transient(error)
