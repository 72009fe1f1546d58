"""A `clickstream api` subprocess for tests and benchmarks: started, probed, stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from load import processes
from load.ports import free_port

API_COMMAND = (sys.executable, "-m", "services.cli", "api")


class ApiServer:
    def __init__(self, environ: Mapping[str, str], log_path: Path, token: str = ""):
        self.port = free_port()
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}"
        self.environ = {
            **os.environ,
            **environ,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "API_TOKEN": token,
            "LOG_FORMAT": "json",
        }
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0, probe: str = "/healthz") -> ApiServer:
        """Start the server and wait until `probe` answers 200."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(API_COMMAND, env=self.environ, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"api exited with {self.process.returncode}: {self.logs()}")
            try:
                if self.get(probe)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)  # polling a starting process, bounded by the deadline
        raise RuntimeError(f"api did not answer {probe} within {timeout_s}s: {self.logs()}")

    def get(
        self, path: str, token: str | None = None, timeout_s: float = 10.0
    ) -> tuple[int, dict | str]:
        """(status, JSON body, or text when the body is not JSON)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> int | None:
        if self.process is None:
            return None
        processes.stop(self.process, timeout_s)
        return self.process.returncode

    def logs(self, tail_chars: int = 3000) -> str:
        return (
            self.log_path.read_text(errors="replace")[-tail_chars:]
            if self.log_path.exists()
            else ""
        )
