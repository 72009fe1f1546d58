"""Processor replicas as real subprocesses: SIGKILL means SIGKILL, RSS is the real RSS.

Used by the benchmarks and the tests; each replica logs to its own file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


class ProcessorFleet:
    def __init__(self, environ: Mapping[str, str], log_dir: Path):
        self.environ = {**os.environ, **environ}
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[int, subprocess.Popen] = {}
        self.kills = 0
        self.restarts = 0

    @staticmethod
    def replica_id(replica: int) -> str:
        return f"replica-{replica}"

    def start(self, replica: int) -> subprocess.Popen:
        if replica in self.processes:
            self.restarts += 1
        log_path = self.log_dir / f"processor-{replica}-{time.monotonic_ns()}.log"
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "process"],
                env={**self.environ, "PROCESSOR_ID": self.replica_id(replica)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[replica] = process
        return process

    def start_all(self, count: int) -> None:
        for replica in range(count):
            self.start(replica)

    def kill(self, replica: int) -> None:
        self.processes[replica].send_signal(signal.SIGKILL)
        self.processes[replica].wait()
        self.kills += 1

    def peak_rss_mb(self, replica: int) -> float:
        """Peak resident set size (VmHWM) of a running replica."""
        status = Path(f"/proc/{self.processes[replica].pid}/status").read_text()
        kilobytes = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")
        )
        return kilobytes / 1024

    def stop_all(self, timeout_s: float = 30) -> list[int]:
        """SIGTERM every running replica; their exit codes (0 is a clean shutdown)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return [process.wait(timeout=timeout_s) for process in self.processes.values()]

    def logs(self, tail_chars: int = 3000) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-tail_chars:]
            for path in sorted(self.log_dir.glob("processor-*.log"))
        )
