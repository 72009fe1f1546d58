"""A private redis-server a chaos run may SIGKILL and restart from its AOF.

Launched through deploy/local/redis.sh (`serve`), the same script and settings
as `make up`'s Redis, so there is one way to start redis-server in the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from load import processes
from load.ports import free_port

LAUNCHER = Path(__file__).resolve().parents[1] / "deploy" / "local" / "redis.sh"
PING_INTERVAL_S = 0.05
STOP_TIMEOUT_S = 10.0


class RedisServer:
    """redis-server on 127.0.0.1 with AOF in `directory`/data and its log in `directory`."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = directory.resolve()  # redis-server changes into its --dir first
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def start(self, timeout_s: float = 15.0) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (make up installs it)")
        if not LAUNCHER.is_file():
            raise RuntimeError(f"{LAUNCHER} is missing: a private Redis needs the repository")
        self.directory.mkdir(parents=True, exist_ok=True)
        # The script execs redis-server: this process is the server, so SIGKILL reaches it.
        self.process = subprocess.Popen(
            [str(LAUNCHER), "serve"],
            env={**os.environ, "REDIS_PORT": str(self.port), "REDIS_DIR": str(self.directory)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_ping(timeout_s)

    def _wait_for_ping(self, timeout_s: float) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer PING on port {self.port}; see {self.log_path}"
                    )
                time.sleep(PING_INTERVAL_S)
        finally:
            client.close()

    def restart(self) -> None:
        """SIGKILL and start again from the AOF: acknowledged writes were already written."""
        self.kill()
        self.start()
        self.restarts += 1

    def outage(self, seconds: float) -> None:
        """Stop (SIGTERM), stay down `seconds`, start again from the AOF.

        SIGTERM, not SIGKILL: Redis writes and fsyncs its AOF before it exits, so
        every acknowledged write is back after the outage however the disk syncs
        (a SIGKILL loses nothing a process crash can lose either, but leaves the
        last second to the kernel). The crash case is `restart`'s.
        """
        self.stop()
        time.sleep(seconds)  # the outage itself: nothing to wait for but the clock
        self.start()
        self.restarts += 1

    def kill(self) -> None:
        processes.kill(self.process)

    def stop(self) -> None:
        processes.stop(self.process, STOP_TIMEOUT_S)
