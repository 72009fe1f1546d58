"""The chaos scenario, the same in every mode: dataset -> shift -> replay under faults ->
final records -> verdict.

What gets killed is a FaultTarget: local replicas (load.chaos.local) or Kubernetes
pods (load.chaos.kubernetes). The scenario only picks a victim, kills it, has it
restarted, and reads the run's topics back for the verdict.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from load import truth
from load.chaos.report import ChaosReport
from load.chaos.settings import plan_for
from load.generate import write_dataset
from load.harness import Kill, TopicReader, end_offsets, read_dlq, wait_for_finals
from load.replay import Pacing, ReplayResult, first_arrival, replay, shift_for_now
from load.verdict import compare_dlq, compare_windows, honest_events_lost
from services.common.config import Config
from services.common.logging import get_logger

log = get_logger("chaos")

# Kills come every CHAOS_KILL_EVERY seconds times a factor drawn from this range (+-50%),
# so they land at every phase of a window and of a rebalance.
KILL_JITTER = (0.5, 1.5)
# However the windows' wait ended, the DLQ gets at least this long to show every planted
# record (they were confirmed before the fences moved, so they are already on the topic).
DLQ_MIN_WAIT_S = 15.0


class FaultTarget(Protocol):
    """The processor replicas a scenario kills."""

    def victims(self) -> list[str]:
        """Replicas that can be killed now."""
        ...

    def kill(self, victim: str) -> Kill:
        """Kill one at once (no graceful shutdown) and say what it held."""
        ...

    def restart(self, victim: str) -> None:
        """Bring it back (or let its orchestrator do so)."""
        ...

    def tick(self, replaying: bool) -> None:
        """Called between faults and while waiting for final records."""
        ...


@dataclass(frozen=True)
class RunTopics:
    events: str
    metrics: str
    dlq: str
    # Shared with other traffic (a release's topics): windows are matched by the replay's
    # range and DLQ records by source offsets past the events topic's end at the start.
    shared: bool = False


def generate_dataset(config: Config, seed: int, workdir: Path) -> tuple[dict[str, Any], Path]:
    path = workdir / "dataset.jsonl.gz"
    expected = write_dataset(plan_for(config, seed), path)
    log.info(
        "dataset generated",
        records=expected["records"],
        windows=len(expected["windows"]),
        dlq_expected=expected["dlq"],
    )
    return expected, path


def play(
    config: Config,
    seed: int,
    topics: RunTopics,
    target: FaultTarget,
    report: ChaosReport,
    workdir: Path,
) -> None:
    """Run the scenario against `topics` while killing `target`'s replicas; fill `report`."""
    rng = random.Random(seed)
    expected, path = generate_dataset(config, seed, workdir)
    shift = shift_for_now(first_arrival(path), config.chaos_window_seconds)
    expected = truth.shift(expected, shift)
    dlq_start = end_offsets(config, topics.dlq) if topics.shared else {}
    events_start = end_offsets(config, topics.events) if topics.shared else {}
    replay_config = config.replace(events_topic=topics.events)
    report.replay = _replay_under_faults(replay_config, path, shift, rng, target, report)
    log.info("replay finished", **report.replay.summary())

    deadline = time.monotonic() + config.chaos_final_timeout
    metrics = TopicReader(config, topics.metrics)
    try:
        records = wait_for_finals(
            metrics,
            list(expected["windows"]),
            deadline,
            on_tick=lambda: target.tick(replaying=False),
        )
    finally:
        metrics.close()
    if topics.shared:  # other traffic's windows are not this run's business
        records = [record for record in records if record.window_start in expected["windows"]]
    report.windows = compare_windows(expected, records)

    dlq = TopicReader(config, topics.dlq, start=dlq_start)
    try:
        entries = read_dlq(
            dlq, sum(expected["dlq"].values()), max(deadline, time.monotonic() + DLQ_MIN_WAIT_S)
        )
    finally:
        dlq.close()
    ours = [e for e in entries if e.source_offset >= events_start.get(e.source_partition, 0)]
    report.dlq = compare_dlq(expected["dlq"], ours)
    report.honest_events_lost = honest_events_lost(expected, records, report.dlq)


def _replay_under_faults(
    config: Config,
    path: Path,
    shift: int,
    rng: random.Random,
    target: FaultTarget,
    report: ChaosReport,
) -> ReplayResult:
    """Replay at CHAOS_SPEED on a thread; kill and restart a random replica meanwhile."""
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def replay_thread() -> None:
        try:
            outcome["result"] = replay(
                config, path, config.events_topic, Pacing(speed=config.chaos_speed), shift
            )
        except Exception as error:  # re-raised by the scenario's thread
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=replay_thread, name="chaos-replay", daemon=True).start()
    target.tick(replaying=True)  # the replay's start: timed faults count from here
    while not done.wait(rng.uniform(*KILL_JITTER) * config.chaos_kill_every):
        victims = target.victims()
        if victims:
            victim = rng.choice(victims)
            report.kills.append(target.kill(victim))
            target.restart(victim)
            report.restarts += 1
        target.tick(replaying=True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
