"""Local chaos: the run's own topics, namespace and group, processor replicas as
subprocesses SIGKILLed and restarted; optionally a private Redis and a private
broker, taken down mid-run by load.chaos.faults."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path

from load.chaos.cluster import failover, require_cluster
from load.chaos.faults import InfrastructureFaults
from load.chaos.report import ChaosReport
from load.chaos.scenario import RunTopics, play
from load.fleet import processor_env
from load.harness import Kill, Replica, Scraper
from load.kafka_server import KafkaServer
from load.ports import free_port
from load.redis_server import RedisServer
from services.common.config import Config
from services.common.kafka import make_admin, wait_for_broker
from services.common.logging import get_logger
from services.common.topics import TopicSpec, ensure_topics
from statestore.keys import Keys

log = get_logger("chaos")

# The run's window keys expire on their own: a shared Redis keeps nothing of it for long,
# and 15 minutes outlasts a run (about 85 s) with its final wait (CHAOS_FINAL_TIMEOUT).
RUN_STATE_TTL_S = 900
HEALTHY_TIMEOUT_S = 30.0
HEALTH_POLL_S = 0.1
# Partitions whose applied counter moved in a replica this recently are the ones it held
# when killed: a few scrapes (every 0.25 s) and micro-batches (100 ms) long.
HELD_WITHIN_S = 1.5


class LocalReplicas:
    """The FaultTarget of local mode: SIGKILL a replica subprocess, restart it in its slot."""

    def __init__(
        self,
        config: Config,
        replicas: list[Replica],
        scraper: Scraper,
        report: ChaosReport,
        faults: InfrastructureFaults,
    ):
        self.replicas = replicas
        self.scraper = scraper
        self.report = report
        self.restart_after_s = config.chaos_restart_after
        self.faults = faults

    def victims(self) -> list[str]:
        return [str(replica.slot) for replica in self.replicas if replica.alive()]

    def kill(self, victim: str) -> Kill:
        replica = self.replicas[int(victim)]
        pid = replica.pid
        partitions = self.scraper.partitions_of(pid, HELD_WITHIN_S)
        kill = Kill(replica.slot, pid, time.monotonic(), partitions)
        replica.kill()
        log.info(
            "killed replica (SIGKILL)", slot=replica.slot, pid=pid, partitions=sorted(partitions)
        )
        return kill

    def restart(self, victim: str) -> None:
        replica = self.replicas[int(victim)]
        time.sleep(self.restart_after_s)  # down for a while, as a crashed pod would be
        replica.start()
        log.info("restarted replica", slot=replica.slot, pid=replica.pid)

    def tick(self, replaying: bool) -> None:
        self.faults.tick()
        self._restart_exited()

    def _restart_exited(self, restart: bool = True) -> None:
        """A replica that died on its own is counted (a FAIL) and restarted."""
        for replica in self.replicas:
            if replica.process is not None and not replica.alive():
                log.warning(
                    "replica exited on its own" + ("; restarting" if restart else ""),
                    slot=replica.slot,
                    returncode=replica.process.returncode,
                    log=str(replica.log_path),
                )
                self.report.unexpected_exits += 1
                if restart:
                    replica.start()

    def finish(self) -> None:
        """At the end: faults under way are waited for, and exits since the last tick count."""
        self.faults.finish()
        self._restart_exited(restart=False)


def run_local(config: Config, seed: int) -> ChaosReport:
    if config.chaos_redis == "failover":
        require_cluster(config)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(config.chaos_workdir) / run_id
    kafka_server = None
    if config.chaos_broker != "shared":
        # Every client of the run (replay, replicas, readers) follows the config here.
        kafka_server = KafkaServer(workdir.with_name(f"{run_id}-kafka"))
        kafka_server.start()
        config = config.replace(kafka_bootstrap_servers=kafka_server.bootstrap_servers)
    try:
        report = _run_local(config, seed, run_id, workdir, kafka_server)
    finally:
        if kafka_server is not None:
            kafka_server.stop()
    if kafka_server is not None:
        if report.ok and not config.chaos_keep:
            shutil.rmtree(kafka_server.directory, ignore_errors=True)
        else:
            report.notes.append(f"chaos broker's data and logs kept in {kafka_server.directory}")
    return report


# long: one run's set-up and tear-down, in order; split, it would read worse.
def _run_local(
    config: Config, seed: int, run_id: str, workdir: Path, kafka_server: KafkaServer | None
) -> ChaosReport:
    wait_for_broker(make_admin(config))
    name = f"chaos-{run_id}"  # the run's state namespace and consumer group
    topics = RunTopics(f"{name}-events", f"{name}-metrics", f"{name}-dlq")
    report = ChaosReport("local", config.chaos_replicas)
    if kafka_server is not None:
        report.broker_restarts = f"0 (own KRaft broker on {kafka_server.bootstrap_servers})"
    started = time.monotonic()
    log.info(
        "chaos run starting",
        run_id=run_id,
        seed=seed,
        broker=config.kafka_bootstrap_servers,
        workdir=str(workdir),
        events=topics.events,
        metrics=topics.metrics,
        dlq=topics.dlq,
        namespace=name,
        group=name,
    )
    admin = make_admin(config)
    _create_topics(config, admin, topics)
    redis_server = None
    replicas: list[Replica] = []
    scraper = None
    try:
        redis_url = config.redis_url
        if config.chaos_redis == "failover":
            report.redis_restarts = "0 (Redis Cluster of REDIS_URL, no failover done)"
        elif config.chaos_redis != "shared":
            redis_server = RedisServer(workdir / "redis")
            redis_server.start()
            redis_url = redis_server.url
            report.redis_restarts = "0 (own Redis, not restarted)"
        run_config = config.replace(
            redis_url=redis_url,
            redis_cluster=config.redis_cluster and redis_server is None,
            events_topic=topics.events,
            metrics_topic=topics.metrics,
            dlq_topic=topics.dlq,
        )
        replicas = _start_replicas(run_config, name, workdir)
        _wait_healthy(replicas, report)
        scraper = Scraper(replicas)
        scraper.start()
        state_keys = Keys(name, topics.events)
        faults = InfrastructureFaults(
            config,
            report,
            redis_server,
            kafka_server,
            cluster_failover=lambda: failover(run_config, state_keys),
        )
        target = LocalReplicas(config, replicas, scraper, report, faults)
        try:
            play(config, seed, topics, target, report, workdir)
        finally:
            target.finish()
    finally:
        if scraper is not None:
            scraper.stop()
            _collect_recoveries(scraper, report)
        for replica in replicas:
            replica.stop()
        if redis_server is not None:
            redis_server.stop()
        report.seconds = time.monotonic() - started
        _clean_up(config, admin, topics, name, workdir, report)
    return report


def _create_topics(config: Config, admin, topics: RunTopics) -> None:
    """The run's own topics, partitioned as the pipeline's settings say (EVENTS_PARTITIONS...)."""
    specs = [
        TopicSpec(topics.events, config.events_partitions),
        TopicSpec(topics.metrics, config.metrics_partitions),
        TopicSpec(topics.dlq, config.dlq_partitions),
    ]
    ensure_topics(admin, specs, replication_factor=1)


def _start_replicas(config: Config, name: str, workdir: Path) -> list[Replica]:
    """CHAOS_REPLICAS `clickstream process` replicas, each on its own metrics port."""
    command = (
        shlex.split(config.chaos_process_command)
        if config.chaos_process_command
        else [sys.executable, "-m", "services.cli", "process"]
    )
    replicas = []
    for slot in range(config.chaos_replicas):
        port = free_port()
        env = processor_env(
            config,
            STATE_NAMESPACE=name,
            CONSUMER_GROUP=name,
            WINDOW_SECONDS=config.chaos_window_seconds,
            GRACE_SECONDS=config.chaos_grace_seconds,
            IDLE_PARTITION_SECONDS=config.chaos_idle_partition_seconds,
            ALLOWED_LATENESS_SECONDS=config.chaos_allowed_lateness_seconds,
            START_FROM="earliest",
            STATE_TTL_SECONDS=RUN_STATE_TTL_S,
            METRICS_PORT=port,
            # A replica restarts under its old name, as a StatefulSet pod does.
            GROUP_INSTANCE_ID=f"{name}-{slot}",
        )
        replicas.append(
            Replica(slot, command, {**os.environ, **env}, port, workdir / f"replica-{slot}.log")
        )
    for replica in replicas:
        replica.start()
    return replicas


def _wait_healthy(
    replicas: list[Replica], report: ChaosReport, timeout_s: float = HEALTHY_TIMEOUT_S
) -> None:
    """Until every replica answers /healthz; the run goes on (with a note) if one never does."""
    deadline = time.monotonic() + timeout_s
    waiting = set(range(len(replicas)))
    while waiting and time.monotonic() < deadline:
        for slot in sorted(waiting):
            replica = replicas[slot]
            if not replica.alive():
                raise RuntimeError(f"replica {slot} exited at start; see {replica.log_path}")
            if replica.get("/healthz")[0] == 200:
                waiting.discard(slot)
        time.sleep(HEALTH_POLL_S)
    if waiting:
        report.notes.append(f"replicas {sorted(waiting)} never answered /healthz")


def _collect_recoveries(scraper: Scraper, report: ChaosReport) -> None:
    first = report.kills[0].at if report.kills else 0.0
    for kill in report.kills:
        seconds = scraper.progress.recovery_seconds(kill)
        log.info(
            "kill recovery",
            at_s=round(kill.at - first, 1),
            slot=kill.slot,
            partitions=sorted(kill.partitions),
            recovered_after_s=None if seconds is None else round(seconds, 1),
        )
        if seconds is None:
            continue
        if seconds == float("inf"):
            report.unrecovered += 1
        else:
            report.recoveries.append(seconds)


def _clean_up(
    config: Config, admin, topics: RunTopics, name: str, workdir: Path, report: ChaosReport
) -> None:
    """Delete the run's topics (unless CHAOS_KEEP); keep replica logs when the run failed."""
    if config.chaos_keep:
        report.notes.append(f"kept topics {name}-* and {workdir}")
        return
    for future in admin.delete_topics([topics.events, topics.metrics, topics.dlq]).values():
        try:
            future.result()
        except Exception as error:  # cleanup is best effort; the verdict stands
            log.warning("could not delete a chaos topic", error=str(error))
    if report.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        report.notes.append(f"replica logs kept in {workdir}")
