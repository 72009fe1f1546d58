"""Kubernetes chaos: the release's topics, processor pods deleted by force; the
Deployment (or StatefulSet) brings them back."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from load.chaos.report import ChaosReport
from load.chaos.scenario import RunTopics, play
from load.harness import Kill
from services.common.config import Config
from services.common.kafka import make_admin, wait_for_broker
from services.common.logging import get_logger

log = get_logger("chaos")

# A kubectl call that hangs (API server unreachable) must not stall the fault loop forever.
KUBECTL_TIMEOUT_S = 60


def kubectl(config: Config, *args: str) -> str:
    command = [*shlex.split(config.chaos_kubectl), "-n", config.chaos_namespace, *args]
    return subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S
    ).stdout


def processor_pods(config: Config, running_only: bool = False) -> list[str]:
    """Names of the release's processor pods (CHAOS_POD_SELECTOR), optionally Running only."""
    phase = ["--field-selector=status.phase=Running"] if running_only else []
    return kubectl(
        config,
        "get",
        "pods",
        "-l",
        config.chaos_pod_selector,
        *phase,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).split()


class ProcessorPods:
    """The FaultTarget of Kubernetes mode: `kubectl delete pod --grace-period=0 --force`."""

    def __init__(self, config: Config):
        self.config = config

    def victims(self) -> list[str]:
        return processor_pods(self.config, running_only=True)

    def kill(self, victim: str) -> Kill:
        kubectl(self.config, "delete", "pod", victim, "--grace-period=0", "--force", "--wait=false")
        log.info("deleted pod", pod=victim)
        return Kill(-1, -1, time.monotonic(), frozenset())

    def restart(self, victim: str) -> None:
        """Nothing to do: the pod's ReplicaSet (or StatefulSet) replaces it."""

    def tick(self, replaying: bool) -> None:
        """Nothing to watch: Kubernetes restarts pods that exit on their own."""


def run_kubernetes(config: Config, seed: int) -> ChaosReport:
    """Same dataset, replay and verdict; pods are deleted by force and restarted by Kubernetes."""
    wait_for_broker(make_admin(config))
    report = ChaosReport(
        "kubernetes",
        0,
        redis_restarts="skipped (kubernetes mode)",
        broker_restarts="skipped (kubernetes mode)",
        unexpected_exits=None,  # Kubernetes restarts them; pod restart counts are its own
    )
    started = time.monotonic()
    pods = processor_pods(config)
    if not pods:
        raise RuntimeError(
            f"no pods match {config.chaos_pod_selector!r} in namespace {config.chaos_namespace!r}"
        )
    report.replicas = len(pods)
    workdir = Path(config.chaos_workdir) / f"k8s-{uuid.uuid4().hex[:8]}"
    topics = RunTopics(config.events_topic, config.metrics_topic, config.dlq_topic, shared=True)
    play(config, seed, topics, ProcessorPods(config), report, workdir)
    report.notes.append("recovery time is not measured in kubernetes mode")
    report.seconds = time.monotonic() - started
    if not config.chaos_keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return report
