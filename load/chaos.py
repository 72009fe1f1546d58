"""`clickstream chaos`: kill processors mid-window and prove nothing was lost or double-counted.

Local mode (default), in order:
1. generate a dataset over CHAOS_WINDOWS short windows, with out-of-order,
   late, too-late and malformed records, and its ground truth;
2. create the run's own topics (chaos-<id>-events/-metrics/-dlq), and with
   CHAOS_REDIS=own|restart start a private redis-server with AOF;
3. start CHAOS_REPLICAS `clickstream process` replicas with short windows, the
   run's topics, state namespace and consumer group, each on its own metrics port;
4. replay the dataset at CHAOS_SPEED with event times shifted to now (whole
   windows, so the ground truth only moves), and meanwhile SIGKILL a random
   replica every CHAOS_KILL_EVERY seconds (jittered) and restart it; with
   CHAOS_REDIS=restart also SIGKILL and restart Redis halfway;
5. wait until every expected window has a final record (CHAOS_FINAL_TIMEOUT);
6. compare each final window with the ground truth and the DLQ with the planted
   bad records (load.verdict), print the verdict table and exit 1 on any mismatch.

Recovery time after a kill is measured from the replicas' own /metrics: the
partitions whose clickstream_events_applied_total moved in the victim during
the last 1.5 s before the kill are its partitions; the kill has recovered when
each of them moves again in another process (a survivor or the restarted
replica). It needs no access to the processor's Redis keys and includes
everything a user would wait for: session timeout, rebalance, fence read and
the first applied batch.

Kubernetes mode (CHAOS_MODE=kubernetes): the same dataset, replay and verdict
against the release's topics, with `kubectl delete pod --grace-period=0 --force`
on a random pod matching CHAOS_POD_SELECTOR instead of local SIGKILLs; the
Deployment restarts pods itself. The windows and DLQ records that belong to the
replay are told apart from other traffic by time range and source offsets.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import truth
from load.generate import Plan, write_dataset
from load.harness import (
    Kill,
    RedisServer,
    Replica,
    Scraper,
    TopicReader,
    end_offsets,
    free_port,
    pick,
    read_dlq,
    wait_for_finals,
)
from load.replay import Pacing, ReplayResult, first_arrival, replay, shift_for_now
from load.verdict import DlqVerdict, WindowsVerdict, compare_dlq, compare_windows
from services.common.config import (
    Config,
    Setting,
    non_negative_int,
    parse_bool,
    positive_float,
    positive_int,
)
from services.common.kafka import make_admin, wait_for_broker
from services.common.logging import get_logger
from services.common.topics import TopicSpec, ensure_topics

log = get_logger("chaos")

SETTINGS = (
    Setting(
        "CHAOS_MODE",
        "local",
        "local: replicas as subprocesses; kubernetes: kubectl",
        choices=("local", "kubernetes"),
        aliases=("--mode",),
    ),
    Setting(
        "CHAOS_REPLICAS",
        3,
        "processor replicas (local mode)",
        parse=positive_int,
        aliases=("--replicas",),
    ),
    Setting(
        "CHAOS_WINDOWS", 6, "windows the dataset spans", parse=positive_int, aliases=("--windows",)
    ),
    Setting(
        "CHAOS_EVENTS", 36_000, "records in the dataset", parse=positive_int, aliases=("--events",)
    ),
    Setting("CHAOS_USERS", 2000, "simulated users", parse=positive_int),
    Setting(
        "CHAOS_SEED",
        None,
        "random seed of data and kills (default: random)",
        parse=int,
        aliases=("--seed",),
    ),
    Setting("CHAOS_WINDOW_SECONDS", 10, "WINDOW_SECONDS of the replicas", parse=positive_int),
    Setting("CHAOS_GRACE_SECONDS", 2, "GRACE_SECONDS of the replicas", parse=non_negative_int),
    Setting(
        "CHAOS_IDLE_PARTITION_SECONDS",
        3,
        "IDLE_PARTITION_SECONDS of the replicas",
        parse=positive_int,
    ),
    Setting(
        "CHAOS_ALLOWED_LATENESS_SECONDS",
        20,
        "ALLOWED_LATENESS_SECONDS of the replicas",
        parse=non_negative_int,
    ),
    Setting(
        "CHAOS_SPEED",
        1.0,
        "replay at K times the dataset's pace",
        parse=positive_float,
        aliases=("--speed",),
    ),
    Setting(
        "CHAOS_KILL_EVERY",
        5.0,
        "mean seconds between kills (jittered +-50%)",
        parse=positive_float,
        aliases=("--kill-every",),
    ),
    Setting("CHAOS_RESTART_AFTER", 1.0, "seconds a killed replica stays down", parse=float),
    Setting(
        "CHAOS_REDIS",
        "shared",
        "shared: use REDIS_URL; own: a private redis-server with AOF; "
        "restart: own, and SIGKILL/restart it halfway",
        choices=("shared", "own", "restart"),
        aliases=("--redis",),
    ),
    Setting(
        "CHAOS_FINAL_TIMEOUT",
        120.0,
        "seconds to wait after the replay for every window's final record",
        parse=positive_float,
    ),
    Setting("CHAOS_KEEP", False, "keep the run's topics, logs and dataset", parse=parse_bool),
    Setting("CHAOS_WORKDIR", ".local/chaos", "where runs keep their dataset and replica logs"),
    Setting(
        "CHAOS_PROCESS_COMMAND",
        "",
        "command that starts one processor (default: this Python's `clickstream process`)",
    ),
    Setting("CHAOS_NAMESPACE", "kafka", "Kubernetes namespace of the release"),
    Setting(
        "CHAOS_POD_SELECTOR",
        "app.kubernetes.io/instance=clickstream,app.kubernetes.io/component=processor",
        "label selector of the release's processor pods",
    ),
    Setting("CHAOS_KUBECTL", "kubectl", "kubectl binary (and flags such as --context)"),
)

PLANTED = {"out_of_order": 0.05, "late": 0.01, "too_late": 0.002, "malformed": 0.005}


@dataclass
class ChaosReport:
    mode: str
    replicas: int
    replay: ReplayResult | None = None
    kills: list[Kill] = field(default_factory=list)
    restarts: int = 0
    unexpected_exits: int = 0
    redis_restarts: str = "skipped (shared Redis)"
    broker_restarts: str = "skipped (shared broker)"
    windows: WindowsVerdict | None = None
    dlq: DlqVerdict | None = None
    recoveries: list[float] = field(default_factory=list)
    unrecovered: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def mismatching_fields(self) -> int:
        return len(self.windows.mismatches) if self.windows else 0

    @property
    def ok(self) -> bool:
        return bool(
            self.windows
            and self.windows.ok
            and self.dlq
            and self.dlq.ok
            and self.replay
            and self.replay.ok
        )


def plan_for(config: Config, seed: int) -> Plan:
    return Plan(
        events=config.chaos_events,
        windows=config.chaos_windows,
        window_seconds=config.chaos_window_seconds,
        grace_seconds=config.chaos_grace_seconds,
        allowed_lateness_seconds=config.chaos_allowed_lateness_seconds,
        users=config.chaos_users,
        seed=seed,
        **PLANTED,
    )


def processor_env(
    config: Config, names: dict[str, str], redis_url: str, metrics_port: int
) -> dict[str, str]:
    """The replicas' environment: this one (PATH, exported processor settings) plus the run's."""
    env = dict(os.environ)
    for setting in (
        "kafka_bootstrap_servers",
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_ca_location",
        "kafka_ssl_certificate_location",
        "kafka_ssl_key_location",
        "kafka_ssl_key_password",
    ):
        env[setting.upper()] = str(getattr(config, setting))
    env.update(
        REDIS_URL=redis_url,
        EVENTS_TOPIC=names["events"],
        METRICS_TOPIC=names["metrics"],
        DLQ_TOPIC=names["dlq"],
        STATE_NAMESPACE=names["namespace"],
        CONSUMER_GROUP=names["group"],
        WINDOW_SECONDS=str(config.chaos_window_seconds),
        GRACE_SECONDS=str(config.chaos_grace_seconds),
        IDLE_PARTITION_SECONDS=str(config.chaos_idle_partition_seconds),
        ALLOWED_LATENESS_SECONDS=str(config.chaos_allowed_lateness_seconds),
        START_FROM="earliest",
        STATE_TTL_SECONDS="900",  # the run's keys expire on a shared Redis
        METRICS_PORT=str(metrics_port),
        LOG_FORMAT="json",
    )
    return env


def run(config: Config) -> int:
    seed = config.chaos_seed if config.chaos_seed is not None else random.randrange(1 << 30)
    if config.chaos_mode == "kubernetes":
        kubectl_binary = shlex.split(config.chaos_kubectl)[0]
        if shutil.which(kubectl_binary) is None:
            log.error("kubernetes mode needs kubectl on the PATH", kubectl=kubectl_binary)
            return 2
        try:
            report = run_kubernetes(config, seed)
        except subprocess.CalledProcessError as error:
            log.error(
                "kubectl failed",
                command=" ".join(error.cmd),
                stderr=(error.stderr or "").strip()[:500],
            )
            return 2
    else:
        report = run_local(config, seed)
    print_verdict(report, seed)
    return 0 if report.ok else 1


def run_local(config: Config, seed: int) -> ChaosReport:
    wait_for_broker(make_admin(config))
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(config.chaos_workdir) / run_id
    names = {
        "events": f"chaos-{run_id}-events",
        "metrics": f"chaos-{run_id}-metrics",
        "dlq": f"chaos-{run_id}-dlq",
        "namespace": f"chaos-{run_id}",
        "group": f"chaos-{run_id}",
    }
    report = ChaosReport("local", config.chaos_replicas)
    started = time.monotonic()
    rng = random.Random(seed)
    log.info("chaos run starting", run_id=run_id, seed=seed, workdir=str(workdir), **names)
    expected, path = _dataset(config, seed, workdir)
    admin = make_admin(config)
    ensure_topics(
        admin,
        [TopicSpec(names["events"], 6), TopicSpec(names["metrics"], 3), TopicSpec(names["dlq"], 3)],
        replication_factor=1,
    )
    redis_server = None
    replicas: list[Replica] = []
    scraper = None
    try:
        redis_url = config.redis_url
        if config.chaos_redis != "shared":
            redis_server = RedisServer(workdir / "redis")
            redis_server.start()
            redis_url = redis_server.url
            report.redis_restarts = "0 (own Redis, not restarted)"
        command = (
            shlex.split(config.chaos_process_command)
            if config.chaos_process_command
            else [sys.executable, "-m", "services.cli", "process"]
        )
        for slot in range(config.chaos_replicas):
            port = free_port()
            replicas.append(
                Replica(
                    slot,
                    command,
                    {
                        **processor_env(config, names, redis_url, port),
                        # A replica restarts under its old name, as a StatefulSet pod does.
                        "GROUP_INSTANCE_ID": f"{names['group']}-{slot}",
                    },
                    port,
                    workdir / f"replica-{slot}.log",
                )
            )
        for replica in replicas:
            replica.start()
        _wait_healthy(replicas, report)
        scraper = Scraper(replicas)
        scraper.start()

        shift = shift_for_now(first_arrival(path), config.chaos_window_seconds)
        expected = truth.shift(expected, shift)
        replay_config = config.replace(events_topic=names["events"])
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def replay_thread() -> None:
            try:
                outcome["result"] = replay(
                    replay_config, path, names["events"], Pacing(speed=config.chaos_speed), shift
                )
            except Exception as error:  # reported by the main thread
                outcome["error"] = error
            finally:
                done.set()

        threading.Thread(target=replay_thread, name="chaos-replay", daemon=True).start()
        replay_seconds = config.chaos_windows * config.chaos_window_seconds / config.chaos_speed
        redis_restart_at = (
            time.monotonic() + replay_seconds / 2 if config.chaos_redis == "restart" else None
        )
        while not done.is_set():
            if done.wait(rng.uniform(0.5, 1.5) * config.chaos_kill_every):
                break
            _kill_one(rng, replicas, scraper, report, config.chaos_restart_after)
            if redis_restart_at is not None and time.monotonic() >= redis_restart_at:
                log.info("restarting redis (SIGKILL, AOF reload)", port=redis_server.port)
                redis_server.restart()
                report.redis_restarts = f"{redis_server.restarts} (own Redis, SIGKILL + AOF)"
                redis_restart_at = None
            _restart_exited(replicas, report)
        if "error" in outcome:
            raise outcome["error"]
        report.replay = outcome["result"]
        log.info("replay finished", **report.replay.summary())

        deadline = time.monotonic() + config.chaos_final_timeout
        metrics = TopicReader(config, names["metrics"])
        try:
            records = wait_for_finals(
                metrics,
                list(expected["windows"]),
                deadline,
                on_tick=lambda: _restart_exited(replicas, report),
            )
        finally:
            metrics.close()
        report.windows = compare_windows(expected, records)
        dlq = TopicReader(config, names["dlq"])
        try:
            entries = read_dlq(
                dlq, sum(expected["dlq"].values()), max(deadline, time.monotonic() + 15)
            )
        finally:
            dlq.close()
        report.dlq = compare_dlq(expected["dlq"], entries)
    finally:
        if scraper is not None:
            scraper.stop()
            _collect_recoveries(scraper, report)
        for replica in replicas:
            replica.stop()
        if redis_server is not None:
            redis_server.stop()
        report.seconds = time.monotonic() - started
        _clean_up(config, admin, names, workdir, report)
    return report


def _dataset(config: Config, seed: int, workdir: Path) -> tuple[dict[str, Any], Path]:
    path = workdir / "dataset.jsonl.gz"
    expected = write_dataset(plan_for(config, seed), path)
    log.info(
        "dataset generated",
        records=expected["records"],
        windows=len(expected["windows"]),
        dlq_expected=expected["dlq"],
    )
    return expected, path


def _wait_healthy(replicas: list[Replica], report: ChaosReport, timeout_s: float = 30.0) -> None:
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
        time.sleep(0.1)
    if waiting:
        report.notes.append(f"replicas {sorted(waiting)} never answered /healthz")


def _kill_one(
    rng: random.Random,
    replicas: list[Replica],
    scraper: Scraper,
    report: ChaosReport,
    restart_after: float,
) -> None:
    victim = pick(rng, replicas)
    if victim is None:
        return
    pid = victim.pid
    partitions = scraper.partitions_of(pid)
    kill = Kill(victim.slot, pid, time.monotonic(), partitions)
    victim.kill()
    report.kills.append(kill)
    log.info("killed replica (SIGKILL)", slot=victim.slot, pid=pid, partitions=sorted(partitions))
    time.sleep(restart_after)
    victim.start()
    report.restarts += 1
    log.info("restarted replica", slot=victim.slot, pid=victim.pid)


def _restart_exited(replicas: list[Replica], report: ChaosReport) -> None:
    """A replica that died on its own is restarted too, and counted separately."""
    for replica in replicas:
        if replica.process is not None and not replica.alive():
            log.warning(
                "replica exited on its own; restarting",
                slot=replica.slot,
                returncode=replica.process.returncode,
                log=str(replica.log_path),
            )
            report.unexpected_exits += 1
            replica.start()


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
    config: Config, admin, names: dict[str, str], workdir: Path, report: ChaosReport
) -> None:
    """Delete the run's topics (unless CHAOS_KEEP); keep replica logs when the run failed."""
    if config.chaos_keep:
        report.notes.append(f"kept topics {names['namespace']}-* and {workdir}")
        return
    for future in admin.delete_topics([names["events"], names["metrics"], names["dlq"]]).values():
        try:
            future.result()
        except Exception as error:  # cleanup is best effort; the verdict stands
            log.warning("could not delete a chaos topic", error=str(error))
    if report.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        report.notes.append(f"replica logs kept in {workdir}")


# ---- Kubernetes mode ------------------------------------------------------------------------


def kubectl(config: Config, *args: str) -> str:
    command = [*shlex.split(config.chaos_kubectl), "-n", config.chaos_namespace, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


def run_kubernetes(config: Config, seed: int) -> ChaosReport:
    """Same dataset, replay and verdict; pods are deleted by force and restarted by Kubernetes."""
    wait_for_broker(make_admin(config))
    report = ChaosReport(
        "kubernetes",
        0,
        redis_restarts="skipped (kubernetes mode)",
        broker_restarts="skipped (kubernetes mode)",
    )
    started = time.monotonic()
    rng = random.Random(seed)
    pods = kubectl(
        config,
        "get",
        "pods",
        "-l",
        config.chaos_pod_selector,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).split()
    if not pods:
        raise RuntimeError(
            f"no pods match {config.chaos_pod_selector!r} in namespace {config.chaos_namespace!r}"
        )
    report.replicas = len(pods)
    workdir = Path(config.chaos_workdir) / f"k8s-{uuid.uuid4().hex[:8]}"
    expected, path = _dataset(config, seed, workdir)
    shift = shift_for_now(first_arrival(path), config.chaos_window_seconds)
    expected = truth.shift(expected, shift)
    dlq_start = end_offsets(config, config.dlq_topic)
    events_start = end_offsets(config, config.events_topic)
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def replay_thread() -> None:
        try:
            outcome["result"] = replay(
                config, path, config.events_topic, Pacing(speed=config.chaos_speed), shift
            )
        except Exception as error:
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=replay_thread, name="chaos-replay", daemon=True).start()
    while not done.wait(rng.uniform(0.5, 1.5) * config.chaos_kill_every):
        pods = kubectl(
            config,
            "get",
            "pods",
            "-l",
            config.chaos_pod_selector,
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ).split()
        if not pods:
            continue
        victim = rng.choice(pods)
        kubectl(config, "delete", "pod", victim, "--grace-period=0", "--force", "--wait=false")
        report.kills.append(Kill(-1, -1, time.monotonic(), frozenset()))
        report.restarts += 1  # the Deployment's ReplicaSet replaces it
        log.info("deleted pod", pod=victim)
    if "error" in outcome:
        raise outcome["error"]
    report.replay = outcome["result"]
    deadline = time.monotonic() + config.chaos_final_timeout
    metrics = TopicReader(config, config.metrics_topic)
    try:
        records = wait_for_finals(metrics, list(expected["windows"]), deadline)
    finally:
        metrics.close()
    # Other traffic's windows are not this run's business; the replay's range is.
    ours = [record for record in records if record.window_start in expected["windows"]]
    report.windows = compare_windows(expected, ours)
    dlq = TopicReader(config, config.dlq_topic, start=dlq_start)
    try:
        entries = read_dlq(dlq, sum(expected["dlq"].values()), max(deadline, time.monotonic() + 15))
    finally:
        dlq.close()
    entries = [
        entry
        for entry in entries
        if entry.source_offset >= events_start.get(entry.source_partition, 0)
    ]
    report.dlq = compare_dlq(expected["dlq"], entries)
    report.notes.append("recovery time is not measured in kubernetes mode")
    report.seconds = time.monotonic() - started
    if not config.chaos_keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


# ---- The verdict table -----------------------------------------------------------------------


def verdict_rows(report: ChaosReport) -> list[tuple[str, str]]:
    replay_result = report.replay
    rows = [("mode", f"{report.mode}, {report.replicas} processor replicas")]
    if replay_result is not None:
        rows.append(
            (
                "events replayed",
                f"{replay_result.events:,} in {replay_result.seconds:.1f} s"
                f" ({replay_result.delivery_errors} delivery errors)",
            )
        )
    rows += [
        (
            "kills (SIGKILL)" if report.mode == "local" else "pods deleted (--force)",
            str(len(report.kills)),
        ),
        ("restarts", f"{report.restarts} (+{report.unexpected_exits} unexpected exits)"),
        ("redis restarts", report.redis_restarts),
        ("broker restarts", report.broker_restarts),
    ]
    windows = report.windows
    if windows is not None:
        extra = []
        if windows.missing:
            extra.append(f"{len(windows.missing)} without a final record")
        if windows.unexpected:
            extra.append(f"{len(windows.unexpected)} unexpected")
        rows.append(
            (
                "windows checked",
                f"{windows.checked} / {windows.expected}"
                + (f" ({', '.join(extra)})" if extra else "")
                + f", {windows.revisions} records read",
            )
        )
        rows.append(("mismatching fields", str(len(windows.mismatches))))
    dlq = report.dlq
    if dlq is not None:
        malformed = sum(v for k, v in dlq.found.items() if k != "too_late")
        too_late = dlq.found.get("too_late", 0)
        expected_total = sum(dlq.expected.values())
        rows.append(
            (
                "events in DLQ",
                f"{dlq.distinct} = {malformed} malformed + {too_late} too"
                f" late (expected {expected_total})",
            )
        )
        rows.append(("DLQ repeats of a source record", str(dlq.records - dlq.distinct)))
        rows.append(("DLQ mismatches", str(len(dlq.mismatches))))
    if report.recoveries:
        idle = sum(1 for kill in report.kills if not kill.partitions)
        rows.append(
            (
                "longest kill-to-processing",
                f"{max(report.recoveries):.1f} s (median "
                f"{statistics.median(report.recoveries):.1f} s over "
                f"{len(report.recoveries)} kills"
                + (f"; {report.unrecovered} not observed" if report.unrecovered else "")
                + (f"; {idle} victims held no partitions yet" if idle else "")
                + ")",
            )
        )
    elif report.mode == "local":
        rows.append(("longest kill-to-processing", "not measured (no /metrics progress seen)"))
    rows.append(("duration", f"{report.seconds:.0f} s"))
    rows.append(("verdict", "PASS" if report.ok else "FAIL"))
    return rows


def print_verdict(report: ChaosReport, seed: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"chaos verdict (seed {seed})", show_header=True)
    table.add_column("check")
    table.add_column("result")
    for name, value in verdict_rows(report):
        style = None
        if name == "verdict":
            style = "bold green" if report.ok else "bold red"
        table.add_row(name, value, style=style)
    # Not a terminal (CI logs, a pipe): wide enough that no row wraps.
    console = Console(width=None if sys.stdout.isatty() else 110)
    console.print(table)
    mismatches = []
    if report.windows is not None:
        mismatches += report.windows.mismatches
        mismatches += [f"{window}: no final record" for window in report.windows.missing]
        mismatches += [f"{window}: not in the ground truth" for window in report.windows.unexpected]
    if report.dlq is not None:
        mismatches += report.dlq.mismatches
    for mismatch in mismatches[:30]:
        console.print(f"  mismatch: {mismatch}")
    if len(mismatches) > 30:
        console.print(f"  ... and {len(mismatches) - 30} more")
    for note in report.notes:
        console.print(f"  note: {note}")
