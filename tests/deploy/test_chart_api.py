"""The chart's HTTP API (templates/api.yaml): rendered, validated and locked down."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.chart import (
    KUBERNETES_VERSION,
    Tools,
    by_kind,
    container,
    env_of,
    helm,
    rendered,
    template,
)

API_VALUES = "api-values.yaml"


def test_api_value_set_passes_lint_and_kubernetes_schemas(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    lint = helm(
        tools, "lint", "--strict", str(chart), "--kube-version", KUBERNETES_VERSION,
        "-f", str(chart / "ci" / API_VALUES),
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr
    resources = rendered(tools, chart, tmp_path, API_VALUES)
    assert "clickstream-api" in by_kind(resources, "Deployment")
    assert "clickstream-api" in by_kind(resources, "Ingress")


def test_api_is_off_unless_enabled(tools: Tools, chart: Path, tmp_path: Path) -> None:
    names = {r["metadata"]["name"] for r in rendered(tools, chart, tmp_path)}
    assert not any(name.startswith("clickstream-api") for name in names)


def test_api_pod_runs_locked_down_with_probes_token_and_redis_from_secrets(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, API_VALUES)
    deployment = by_kind(resources, "Deployment")["clickstream-api"]
    pod, main = deployment["spec"]["template"]["spec"], container(deployment)
    assert main["args"] == ["api"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert main["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = {e["name"]: e for e in env_of(deployment)}
    assert env["API_HOST"]["value"] == "0.0.0.0"
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "clickstream-api-token",
        "key": "token",
    }
    assert env["API_CORS_ORIGINS"]["value"] == "https://grafana.example.com"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "clickstream-redis-auth"
    assert "REDIS_PASSWORD" not in env["REDIS_URL"]["value"]  # never spliced into the URL
    # With a token, /metrics needs it too: no anonymous scrape annotation.
    assert "prometheus.io/scrape" not in deployment["spec"]["template"]["metadata"]["annotations"]


def test_api_network_policy_allows_egress_to_dns_and_redis_only(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, API_VALUES)
    spec = by_kind(resources, "NetworkPolicy")["clickstream-api"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    assert [{p["port"] for p in rule["ports"]} for rule in spec["egress"]] == [{53}, {6379}]
    redis_peer = spec["egress"][1]["to"][0]["podSelector"]["matchLabels"]
    assert redis_peer["app.kubernetes.io/name"] == "redis"


def test_api_service_and_ingress_route_to_the_http_port(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, API_VALUES)
    service = by_kind(resources, "Service")["clickstream-api"]["spec"]
    assert service["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    ingress = by_kind(resources, "Ingress")["clickstream-api"]["spec"]
    assert ingress["tls"][0]["hosts"] == ["clickstream.example.com"]
    (rule,) = ingress["rules"]
    assert rule["host"] == "clickstream.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "clickstream-api", "port": {"name": "http"}}


def test_api_values_schema_rejects_unknown_keys_and_bad_ports(tools: Tools, chart: Path) -> None:
    misspelt = template(tools, chart, None, "api.enabeld=true")
    assert misspelt.returncode != 0 and "enabeld" in misspelt.stderr
    low = template(tools, chart, None, "api.enabled=true", "api.port=80")
    assert low.returncode != 0 and "/api/port" in low.stderr
