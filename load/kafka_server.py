"""A private single-node KRaft broker a chaos run may kill and restart.

Launched through deploy/local/kafka.sh (`serve`), the same script, jars and
server.properties as `make up`'s broker, on free ports with its own data
directory, so restarting it never touches the shared broker on 9092.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from load import processes
from load.ports import free_port

LAUNCHER = Path(__file__).resolve().parents[1] / "deploy" / "local" / "kafka.sh"
# One broker beside the shared one, the processors and Redis on a 2-core machine.
HEAP_OPTS = "-Xms128m -Xmx512m"
READY_POLL_S = 0.5
STOP_TIMEOUT_S = 30.0


class KafkaServer:
    """A KRaft broker+controller on 127.0.0.1 with its data and logs in `directory`."""

    def __init__(self, directory: Path):
        self.directory = directory.resolve()
        self.port = free_port()
        self.controller_port = free_port()
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "logs" / "stdout.log"

    def start(self, timeout_s: float = 90.0) -> None:
        if not LAUNCHER.is_file():
            raise RuntimeError(f"{LAUNCHER} is missing: a private broker needs the repository")
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DIR": str(self.directory),
            "KAFKA_HEAP_OPTS": HEAP_OPTS,
        }
        # The script execs the JVM: this process is the broker, so signals reach it.
        self.process = subprocess.Popen(
            [str(LAUNCHER), "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        """Until the broker answers a metadata request with itself in it."""
        from confluent_kafka.admin import AdminClient

        # log_level 0: refused connections while the JVM starts are expected, not news.
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the chaos broker exited at start; see {self.log_path}")
            try:
                if admin.list_topics(timeout=READY_POLL_S * 4).brokers:
                    return
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the chaos broker did not answer on port {self.port}; see {self.log_path}"
                )
            time.sleep(READY_POLL_S)

    def kill(self) -> None:
        """SIGKILL: acknowledged records are in the page cache, which outlives the process."""
        processes.kill(self.process)

    def stop(self) -> None:
        processes.stop(self.process, STOP_TIMEOUT_S)
