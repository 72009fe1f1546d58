"""Outage: a failing dependency withdraws readiness, and ends the process only past its budget."""

import pytest

from services.common.errors import BrokerUnavailable
from services.common.observability import Health
from services.processor.outage import Outage


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_failures_within_the_budget_withdraw_readiness_until_the_first_success():
    clock, health = Clock(), Health()
    health.ready = True
    outage = Outage("kafka", 60, health, clock)
    outage.failed("publish", RuntimeError("timeout"))
    clock.now += 59
    outage.failed("publish", RuntimeError("timeout"))
    assert not health.ready and health.blocked() == {"kafka"}
    outage.succeeded()
    assert health.ready


def test_failures_lasting_the_budget_raise_broker_unavailable_naming_the_operation():
    clock, health = Clock(), Health()
    outage = Outage("kafka", 60, health, clock)
    outage.failed("dead-letter confirm", RuntimeError("timeout"))
    clock.now += 60
    with pytest.raises(BrokerUnavailable, match=r"failed for 60 s .*dead-letter confirm"):
        outage.failed("dead-letter confirm", RuntimeError("timeout"))


def test_a_success_restarts_the_budget():
    clock, health = Clock(), Health()
    outage = Outage("kafka", 60, health, clock)
    outage.failed("publish", RuntimeError("x"))
    clock.now += 50
    outage.succeeded()
    clock.now += 50
    outage.failed("publish", RuntimeError("x"))  # a new outage: no raise
    assert outage.started_at == clock.now


def test_readiness_needs_every_dependency():
    health = Health()
    health.ready = True
    health.block("redis")
    health.block("kafka")
    health.unblock("redis")
    assert not health.ready
    health.unblock("kafka")
    assert health.ready
