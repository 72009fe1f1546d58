"""Processor replicas started by tools and tests: their environment, and a numbered fleet.

processor_env() is the one place that turns a tool's or a test's Config into a
`clickstream process` environment (chaos, bench, profile and the integration
tests all use it). The fleet runs real subprocesses (load.harness.Replica):
SIGKILL means SIGKILL and RSS is the real RSS. Replica i keeps its log file and
metrics port across restarts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from load.harness import Replica
from services.common.config import Config

PROCESS_COMMAND = (sys.executable, "-m", "services.cli", "process")

# What a replica takes from the starting tool's Config: where the broker, Redis and
# the topics are (credentials included), so it talks to the same pipeline.
CONNECTION = (
    "kafka_bootstrap_servers",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_ssl_key_password",
    "redis_url",
    "redis_cluster",
    "redis_username",
    "redis_password",
    "redis_tls_ca_file",
    "events_topic",
    "metrics_topic",
    "dlq_topic",
)


def processor_env(config: Config, **settings: object) -> dict[str, str]:
    """A replica's settings: `config`'s connection, JSON logs (read back by tools), no
    metrics port, then `settings` by environment name (STATE_NAMESPACE=..., ...).

    Only the processor's own variables: whoever starts the process adds os.environ.
    """
    env = {name.upper(): str(getattr(config, name)) for name in CONNECTION}
    env.update(METRICS_PORT="0", LOG_FORMAT="json")
    env.update({name: str(value) for name, value in settings.items()})
    return env


class ProcessorFleet:
    def __init__(self, environ: Mapping[str, str], log_dir: Path, static_membership: bool = False):
        self.environ = {**os.environ, **environ}
        self.log_dir = log_dir
        # As a StatefulSet does: replica i rejoins the group under the same instance id.
        self.static_membership = static_membership
        self.replicas: dict[int, Replica] = {}
        self.kills = 0
        self.restarts = 0

    @staticmethod
    def replica_id(replica: int) -> str:
        return f"replica-{replica}"

    def start(self, replica: int) -> Replica:
        if replica in self.replicas:
            self.restarts += 1
        else:
            name = self.replica_id(replica)
            membership = {"GROUP_INSTANCE_ID": name} if self.static_membership else {}
            self.replicas[replica] = Replica(
                replica,
                PROCESS_COMMAND,
                {**self.environ, "PROCESSOR_ID": name, **membership},
                metrics_port=int(self.environ.get("METRICS_PORT", "0")),
                log_path=self.log_dir / f"processor-{replica}.log",
            )
        self.replicas[replica].start()
        return self.replicas[replica]

    def start_all(self, count: int) -> None:
        for replica in range(count):
            self.start(replica)

    def kill(self, replica: int) -> None:
        self.replicas[replica].kill()
        self.kills += 1

    def peak_rss_mb(self, replica: int) -> float:
        """Peak resident set size (VmHWM) of a running replica."""
        status = Path(f"/proc/{self.replicas[replica].pid}/status").read_text()
        kilobytes = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")
        )
        return kilobytes / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the running replicas so far (/proc/<pid>/stat)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for replica in self.replicas.values():
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = Path(f"/proc/{replica.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return total

    def stop_all(self, timeout_s: float = 30) -> list[int]:
        """SIGTERM every replica (SIGKILL past the timeout); exit codes, 0 when clean."""
        for replica in self.replicas.values():
            replica.stop(timeout_s)
        return [replica.process.returncode for replica in self.replicas.values()]

    def logs(self, tail_chars: int = 3000) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-tail_chars:]
            for path in sorted(self.log_dir.glob("processor-*.log"))
        )
