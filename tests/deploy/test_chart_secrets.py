"""The chart's secrets: where the Redis and Kafka passwords come from, and what never
holds one. Rendered offline like test_chart.py (same tools, same chart copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.chart import (
    MINIMAL,
    VALUE_SETS,
    Tools,
    by_kind,
    container,
    env_of,
    rendered,
    template,
)

pytestmark = pytest.mark.timeout(1800)  # the first run builds helm and promtool


def workloads(resources: list[dict]) -> dict[str, dict]:
    return {**by_kind(resources, "Deployment"), **by_kind(resources, "StatefulSet")}


def env_by_name(workload: dict) -> dict[str, dict]:
    return {e["name"]: e for e in env_of(workload)}


def pod_volumes(workload: dict) -> dict[str, dict]:
    return {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}


# --- no password anywhere but a Secret reference -------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_password_is_in_any_env_value_url_or_config_map(
    tools: Tools, chart: Path, tmp_path: Path, value_set: str
) -> None:
    resources = rendered(tools, chart, tmp_path, VALUE_SETS[value_set])
    for name, workload in workloads(resources).items():
        for entry in env_of(workload):
            value = entry.get("value", "")
            if "PASSWORD" in entry["name"]:
                assert "value" not in entry, (name, entry)
                assert set(entry["valueFrom"]["secretKeyRef"]) == {"name", "key"}, name
            # No userinfo in a URL, and nothing for the kubelet to splice in.
            assert "@" not in value and "$(" not in value, (name, entry)
    for config_map in by_kind(resources, "ConfigMap").values():
        for key, value in config_map["data"].items():
            assert "PASSWORD" not in key and "@" not in value, key
    # The only Secret the chart writes holds KEDA's non-secret Kafka settings.
    assert set(by_kind(resources, "Secret")) <= {"clickstream-processor-keda-kafka"}


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendering_twice_gives_the_same_manifests(
    tools: Tools, chart: Path, value_set: str
) -> None:
    """Nothing random in a render: a GitOps tool re-rendering sees no change."""
    first = template(tools, chart, VALUE_SETS[value_set])
    second = template(tools, chart, VALUE_SETS[value_set])
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


# --- bundled Redis -------------------------------------------------------------------------


def test_bundled_redis_password_reaches_processor_and_dashboard_from_the_secret(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, "default-values.yaml")
    for component in ("processor", "consumer"):
        env = env_by_name(by_kind(resources, "Deployment")[f"clickstream-{component}"])
        assert env["REDIS_URL"]["value"] == "redis://clickstream-redis-master.kafka.svc:6379/0"
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis-credentials",
            "key": "password",
        }
        assert "REDIS_USERNAME" not in env and "REDIS_TLS_CA_FILE" not in env
    producer = env_by_name(by_kind(resources, "Deployment")["clickstream-producer"])
    assert not {"REDIS_URL", "REDIS_PASSWORD"} & set(producer)


def test_bundled_redis_without_a_secret_fails_with_the_command_that_makes_one(
    tools: Tools, chart: Path
) -> None:
    result = template(tools, chart, None)
    assert result.returncode != 0
    assert "redis.auth.existingSecret is required" in result.stderr
    assert "kubectl create secret generic clickstream-redis-auth -n kafka" in result.stderr
    assert "--from-literal=redis-password=" in result.stderr


def test_removed_password_generation_fails_saying_what_replaces_it(
    tools: Tools, chart: Path
) -> None:
    result = template(tools, chart, MINIMAL, "redisAuth.createSecret=true")
    assert result.returncode != 0
    assert "redisAuth was removed" in result.stderr
    assert "redis.auth.existingSecret" in result.stderr


def test_bundled_redis_with_tls_is_refused(tools: Tools, chart: Path) -> None:
    result = template(tools, chart, MINIMAL, "redis.tls.enabled=true")
    assert result.returncode != 0 and "externalRedis.caSecret" in result.stderr


# --- external Redis ------------------------------------------------------------------------


def test_external_redis_and_sasl_passwords_come_from_secrets(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, "external-redis-values.yaml")
    env = env_by_name(by_kind(resources, "Deployment")["clickstream-processor"])
    assert (
        env["REDIS_URL"]["value"] == "rediss://clickstream.abc123.use1.cache.amazonaws.com:6379/0"
    )
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "clickstream-elasticache",
        "key": "auth-token",
    }
    # ElastiCache's certificate chains to a public CA: nothing to mount.
    assert "REDIS_TLS_CA_FILE" not in env
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "clickstream",
        "key": "password",
    }
    config = by_kind(resources, "ConfigMap")["clickstream-config"]["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["KAFKA_SSL_CA_LOCATION"] == "/etc/clickstream/kafka-ca/ca.crt"


def test_external_redis_private_ca_is_mounted_where_redis_tls_ca_file_points(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, "external-redis-private-ca-values.yaml")
    for component in ("processor", "consumer"):
        workload = by_kind(resources, "Deployment")[f"clickstream-{component}"]
        env = env_by_name(workload)
        assert env["REDIS_URL"]["value"] == "rediss://redis.state.svc:6380/2"
        assert env["REDIS_USERNAME"]["value"] == "clickstream"
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "clickstream-redis-acl",
            "key": "password",
        }
        assert env["REDIS_TLS_CA_FILE"]["value"] == "/etc/clickstream/redis-ca/ca.pem"
        (mount,) = [m for m in container(workload)["volumeMounts"] if m["name"] == "redis-ca"]
        assert mount == {
            "name": "redis-ca",
            "mountPath": "/etc/clickstream/redis-ca",
            "readOnly": True,
        }
        assert pod_volumes(workload)["redis-ca"]["secret"] == {
            "secretName": "redis-ca",
            "items": [{"key": "ca.pem", "path": "ca.pem"}],
        }
    policy = by_kind(resources, "NetworkPolicy")["clickstream-consumer"]["spec"]
    (redis_rule,) = [r for r in policy["egress"] if r["ports"][0]["port"] == 6380]
    assert redis_rule["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "state"
    }


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("externalRedis.tls=false", "set externalRedis.tls=true"),
        ("externalRedis.existingSecret=", "externalRedis.existingSecret must name the Secret"),
    ],
)
def test_inconsistent_external_redis_settings_are_refused(
    tools: Tools, chart: Path, assignment: str, message: str
) -> None:
    result = template(tools, chart, "external-redis-private-ca-values.yaml", assignment)
    assert result.returncode != 0 and message in result.stderr


# --- the dashboard's live panel ------------------------------------------------------------


def test_dashboard_reaches_redis_only_with_its_live_panel_on(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    def consumer_view(*sets: str) -> tuple[dict, set[int], dict]:
        resources = rendered(tools, chart, tmp_path, MINIMAL, *sets)
        workload = by_kind(resources, "Deployment")["clickstream-consumer"]
        policy = by_kind(resources, "NetworkPolicy")["clickstream-consumer"]["spec"]
        ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
        return env_by_name(workload), ports, workload

    env, ports, _ = consumer_view()
    assert {"REDIS_URL", "REDIS_PASSWORD"} <= set(env) and 6379 in ports
    # Its lag panel reads the processors' group, whatever it is called.
    assert env["CONSUMER_GROUP"]["value"] == "clickstream-processor"
    env, ports, workload = consumer_view("consumer.livePanel=false")
    assert not {"REDIS_URL", "REDIS_PASSWORD", "REDIS_TLS_CA_FILE"} & set(env)
    assert 6379 not in ports
    assert "redis-ca" not in pod_volumes(workload)


# --- Kafka and plain env values ------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        "processor.env.KAFKA_SASL_PASSWORD=hunter2",
        "consumer.env.REDIS_URL=x",
        "consumer.env.REDIS_PASSWORD=x",
    ],
)
def test_secrets_set_as_plain_env_values_are_refused(
    tools: Tools, chart: Path, assignment: str
) -> None:
    result = template(tools, chart, MINIMAL, assignment)
    assert result.returncode != 0 and "secrets are not values" in result.stderr


def test_sasl_without_a_password_secret_is_refused(tools: Tools, chart: Path) -> None:
    result = template(
        tools,
        chart,
        MINIMAL,
        "kafka.securityProtocol=SASL_SSL",
        "kafka.sasl.mechanism=SCRAM-SHA-512",
        "kafka.sasl.username=clickstream",
    )
    assert result.returncode != 0 and "kafka.sasl.existingSecret" in result.stderr
