"""Where the tests' Kafka and Redis come from.

In order: an already running pair named by TEST_KAFKA_BOOTSTRAP_SERVERS and
TEST_REDIS_URL; otherwise containers via testcontainers when a Docker engine
answers; otherwise the project's own local pair (deploy/local/up.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / "deploy" / "local"
CLUSTER_DIR = Path(os.environ.get("LOCAL_STATE_DIR", REPO / ".local")) / "redis-cluster"


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap_servers: str
    redis_url: str
    source: str  # env | testcontainers | local


def choose_source(environ: Mapping[str, str], docker_answers: Callable[[], bool]) -> str:
    if environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS") and environ.get("TEST_REDIS_URL"):
        return "env"
    if docker_answers():
        return "testcontainers"
    return "local"


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


@contextmanager
def provide(environ: Mapping[str, str]) -> Iterator[Stack]:
    source = choose_source(environ, docker_answers)
    if source == "env":
        yield Stack(environ["TEST_KAFKA_BOOTSTRAP_SERVERS"], environ["TEST_REDIS_URL"], "env")
    elif source == "testcontainers":
        with _containers() as stack:
            yield stack
    else:
        with _local(environ) as stack:
            yield stack


@contextmanager
def _containers() -> Iterator[Stack]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        RedisContainer("redis:7") as redis,
    ):
        host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
        yield Stack(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")


@contextmanager
def _local(environ: Mapping[str, str]) -> Iterator[Stack]:
    """Start the local pair unless it already runs; stop it afterwards only if we started it."""
    already_running = all(
        subprocess.run([str(LOCAL / f"{name}.sh"), "status"], check=False).returncode == 0
        for name in ("kafka", "redis")
    )
    subprocess.run([str(LOCAL / "up.sh")], check=True)
    kafka_port = environ.get("KAFKA_PORT", "9092")
    redis_port = environ.get("REDIS_PORT", "6379")
    try:
        yield Stack(f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0", "local")
    finally:
        if not already_running:
            subprocess.run([str(LOCAL / "down.sh")], check=False)


@dataclass(frozen=True)
class Cluster:
    """A Redis Cluster of three masters with a replica each, which tests may flush and fail over."""

    url: str
    source: str  # env | local

    def kill_node(self, port: int) -> None:
        """SIGKILL one node of the local cluster (its PID file says which process)."""
        if self.source != "local":
            raise RuntimeError("only the local cluster's nodes can be killed by the tests")
        pid = int((CLUSTER_DIR / str(port) / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)

    def restore(self) -> None:
        """Start any killed node again (it rejoins as a replica); wait until the cluster is ok."""
        subprocess.run([str(LOCAL / "redis-cluster.sh"), "start"], check=True, capture_output=True)


@contextmanager
def provide_cluster(environ: Mapping[str, str]) -> Iterator[Cluster]:
    """TEST_REDIS_CLUSTER_URL if set; else the local cluster (deploy/local/redis-cluster.sh),
    started for the session unless it already runs, and stopped afterwards only then."""
    if environ.get("TEST_REDIS_CLUSTER_URL"):
        yield Cluster(environ["TEST_REDIS_CLUSTER_URL"], "env")
        return
    launcher = str(LOCAL / "redis-cluster.sh")
    already_running = subprocess.run([launcher, "status"], check=False).returncode == 0
    started = subprocess.run([launcher, "start"], check=True, capture_output=True, text=True)
    try:
        yield Cluster(started.stdout.strip().splitlines()[-1], "local")
    finally:
        if not already_running:
            subprocess.run([launcher, "stop"], check=False)
