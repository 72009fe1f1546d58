"""Kill-to-processing after SIGKILL, by consumer group membership.

Two replicas share live traffic; replica 0 is SIGKILLed and started again a second
later (as a Deployment or StatefulSet would replace its pod). The takeover lasts
from the kill until every partition the victim had applied before the kill has a
batch applied again (`applied_at` in its Redis partition hash, written by the apply
script with Redis' clock), by whichever process: another replica after a
rebalance, or the restarted victim itself under static membership. Then the group
settles (every partition applying, the restarted replica among the owners) and
the next kill follows. Every mode is measured the same way:

- classic: the classic protocol, dynamic members, SESSION_TIMEOUT_MS (6 s);
- classic:<ms>: the same with SESSION_TIMEOUT_MS=<ms>;
- static: the classic protocol with GROUP_INSTANCE_ID per replica;
- consumer: KIP-848 (GROUP_PROTOCOL=consumer), the broker's
  group.consumer.session.timeout.ms and heartbeat interval;
- consumer:<ms>: KIP-848 with the group's own session timeout set to <ms> (a group
  config, as `kafka-configs --entity-type groups` sets it; the heartbeat interval a
  sixth of it, at least 500 ms): what the broker setting would give, measured on a
  shared broker without changing its defaults.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from load.bench_parts import live_traffic
from load.fleet import ProcessorFleet
from services.common.config import Config, redis_options
from services.common.errors import ConfigError
from services.common.logging import get_logger
from statestore import StateStore

log = get_logger("takeover")

MODES = ("classic", "static", "consumer")
# KIP-848 heartbeats carry assignments: a few per session timeout, and no faster than the
# broker's group.consumer.min.heartbeat.interval.ms (500 ms locally).
HEARTBEATS_PER_SESSION = 6
HEARTBEAT_FLOOR_MS = 500
RESTART_AFTER_S = 1.0  # as chaos: the replacement process starts a second after the kill
POLL_S = 0.05  # takeovers last seconds; 50 ms is well inside their spread
# Settled: every partition applied within this long, so no rebalance is still moving them.
SETTLED_WITHIN_MS = 500
SETTLE_TIMEOUT_S = 60.0
TAKEOVER_TIMEOUT_S = 60.0
REPLICAS = 2
LIVE_RATE = 2000  # events/s: every partition gets records every poll
SECONDS_PER_KILL = 40  # traffic budget per kill: takeover, restart and settling


@dataclass
class TakeoverRun:
    mode: str
    seconds: list[float]  # one per kill; nan when the takeover timed out


def measure(bench, mode: str, kills: int) -> TakeoverRun:
    """`kills` SIGKILLs of replica 0 under `mode`, each timed from kill to processing."""
    kind, _, session_ms = mode.partition(":")
    if kind not in MODES or (session_ms and (kind == "static" or not session_ms.isdigit())):
        raise ConfigError(f"BENCH_TAKEOVER_MODES: unknown mode {mode!r}")
    topic = bench.topic(f"takeover-{kind}-{uuid.uuid4().hex[:4]}")
    namespace = f"bench-{bench.run_id}-takeover-{kind}{session_ms}"
    config: Config = bench.config
    store = StateStore.from_url(config.redis_url, namespace, topic, **redis_options(config))
    protocol = "consumer" if kind == "consumer" else "classic"
    settings = {"GROUP_PROTOCOL": protocol}
    if session_ms and protocol == "consumer":
        _set_group_session(bench.admin, namespace, int(session_ms))
    elif session_ms:
        settings["SESSION_TIMEOUT_MS"] = session_ms
    fleet = ProcessorFleet(
        bench.processor_env(topic, namespace, **settings),
        bench.log_dir / f"takeover-{mode}",
        static_membership=kind == "static",
    )
    partitions = list(bench.partitions)
    stop = threading.Event()
    traffic = threading.Thread(
        target=live_traffic,
        args=(config, topic, SECONDS_PER_KILL * kills + 30, LIVE_RATE, stop),
    )
    fleet.start_all(REPLICAS)
    traffic.start()
    victim = fleet.replica_id(0)
    seconds = []
    try:
        for _ in range(kills):
            owned = _settle(store, partitions, victim, REPLICAS)
            killed_at_ms = int(time.time() * 1000)
            fleet.kill(0)
            seconds.append(_wait_for_takeover(store, owned, killed_at_ms, fleet))
            log.info("takeover", mode=mode, seconds=round(seconds[-1], 2), partitions=owned)
    finally:
        stop.set()
        traffic.join()
        fleet.stop_all()
        store.reset()
        if session_ms and protocol == "consumer":
            # Group configs outlive the group in the broker's metadata: leave none behind.
            _set_group_session(bench.admin, namespace, None)
    return TakeoverRun(mode, seconds)


def _set_group_session(admin, group: str, session_ms: int | None) -> None:
    """Set the group's own KIP-848 session timeout and heartbeat; None removes them."""
    if session_ms is None:
        values = {"consumer.session.timeout.ms": None, "consumer.heartbeat.interval.ms": None}
    else:
        values = {
            "consumer.session.timeout.ms": session_ms,
            "consumer.heartbeat.interval.ms": max(
                HEARTBEAT_FLOOR_MS, session_ms // HEARTBEATS_PER_SESSION
            ),
        }
    entries = [
        ConfigEntry(
            name,
            "" if value is None else str(value),
            incremental_operation=(
                AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
            ),
        )
        for name, value in values.items()
    ]
    resource = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()


def _settle(store: StateStore, partitions: list[int], victim: str, replicas: int) -> list[int]:
    """Wait until every partition applies and each replica owns some; the victim's."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        states = store.partition_states(partitions)
        now_ms = int(time.time() * 1000)
        owned = [p for p, s in states.items() if s.owner == victim]
        fresh = all(
            s.applied_at_ms and now_ms - s.applied_at_ms < SETTLED_WITHIN_MS
            for s in states.values()
        )
        owners = {s.owner for s in states.values()}
        if owned and fresh and len(owners) == replicas:
            return owned
        time.sleep(POLL_S)
    raise RuntimeError(f"the group did not settle within {SETTLE_TIMEOUT_S:.0f} s")


def _wait_for_takeover(
    store: StateStore, owned: list[int], killed_at_ms: int, fleet: ProcessorFleet
) -> float:
    restart_at = killed_at_ms / 1000 + RESTART_AFTER_S
    restarted = False
    while time.time() - killed_at_ms / 1000 < TAKEOVER_TIMEOUT_S:
        if not restarted and time.time() >= restart_at:
            fleet.start(0)
            restarted = True
        states = store.partition_states(owned)
        if all(s.applied_at_ms and s.applied_at_ms > killed_at_ms for s in states.values()):
            if not restarted:
                fleet.start(0)
            return time.time() - killed_at_ms / 1000
        time.sleep(POLL_S)
    if not restarted:
        fleet.start(0)
    return float("nan")
