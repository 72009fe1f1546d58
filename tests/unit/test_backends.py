from __future__ import annotations

from tests.backends import choose_source


def test_running_pair_named_by_environment_comes_first():
    environ = {"TEST_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "TEST_REDIS_URL": "redis://r"}
    assert choose_source(environ, docker_answers=lambda: True) == "env"


def test_testcontainers_when_docker_answers():
    assert choose_source({}, docker_answers=lambda: True) == "testcontainers"
    assert choose_source({"TEST_REDIS_URL": "redis://r"}, lambda: True) == "testcontainers"


def test_local_pair_otherwise():
    assert choose_source({}, docker_answers=lambda: False) == "local"
