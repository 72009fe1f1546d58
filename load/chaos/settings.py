"""`clickstream chaos` settings: run size, the replicas' processor settings, pace, kills."""

from __future__ import annotations

from load.generate import Plan
from services.common.config import (
    Config,
    Setting,
    non_negative_int,
    parse_bool,
    positive_float,
    positive_int,
)
from services.common.topics import PARTITION_SETTINGS

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
        "outage",
        "shared: use REDIS_URL; own: a private redis-server with AOF; "
        "restart: own, and SIGKILL/restart it halfway; "
        "outage: own, stopped (SIGTERM) for CHAOS_REDIS_OUTAGE_SECONDS, then restarted; "
        "failover: the Redis Cluster of REDIS_URL (REDIS_CLUSTER=true), the master of the "
        "run's emission slot failed over to its replica (CLUSTER FAILOVER) mid-replay",
        choices=("shared", "own", "restart", "outage", "failover"),
        aliases=("--redis",),
    ),
    Setting(
        "CHAOS_REDIS_OUTAGE_SECONDS",
        12.0,
        "how long the private Redis stays down with --redis outage",
        parse=positive_float,
        aliases=("--redis-outage-seconds",),
    ),
    Setting(
        "CHAOS_BROKER",
        "shared",
        "shared: use KAFKA_BOOTSTRAP_SERVERS; own: a private KRaft broker on free ports; "
        "restart: own, and SIGKILL/restart it during the replay",
        choices=("shared", "own", "restart"),
        aliases=("--broker",),
    ),
    Setting(
        "CHAOS_POISON",
        True,
        "mix hostile records (deep nesting, year 9999, future event times, huge numbers, "
        "near-limit sizes, control characters) into the dataset",
        parse=parse_bool,
        aliases=("--poison",),
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
    # The local run's own topics are partitioned as the pipeline's.
    *PARTITION_SETTINGS,
)

PLANTED = {"out_of_order": 0.05, "late": 0.01, "too_late": 0.002, "malformed": 0.005}
# Poison records per dataset when CHAOS_POISON is on: a share, so every window gets some.
POISON_SHARE = 0.002


def plan_for(config: Config, seed: int) -> Plan:
    return Plan(
        events=config.chaos_events,
        windows=config.chaos_windows,
        window_seconds=config.chaos_window_seconds,
        grace_seconds=config.chaos_grace_seconds,
        allowed_lateness_seconds=config.chaos_allowed_lateness_seconds,
        users=config.chaos_users,
        seed=seed,
        poison=POISON_SHARE if config.chaos_poison else 0.0,
        **PLANTED,
    )
