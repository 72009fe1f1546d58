"""Rendering and validating the Helm chart offline: the helpers the deploy tests share.

See test_chart.py for how the tools are built and why the Redis subchart is left out.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "clickstream"
HERE = Path(__file__).resolve().parent
DASHBOARD = ROOT / "deploy" / "grafana" / "clickstream-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "clickstream-alerts.yaml"
KUBERNETES_VERSION = "1.33.0"
RELEASE, NAMESPACE = "clickstream", "kafka"

# The defaults plus the one value they lack, the Redis password Secret's name: the chart
# refuses to render without it (it never generates a password).
MINIMAL = "existing-secret-values.yaml"

# Value sets rendered and validated; files live in charts/clickstream/ci/.
VALUE_SETS = {
    "existing-secret": MINIMAL,
    "defaults-with-producer": "default-values.yaml",
    "external-redis": "external-redis-values.yaml",
    "external-redis-private-ca": "external-redis-private-ca-values.yaml",
    "external-redis-cluster": "external-redis-cluster-values.yaml",
    "topics-off": "topics-off-values.yaml",
    "keda-servicemonitor": "keda-servicemonitor-values.yaml",
}


@dataclass(frozen=True)
class Tools:
    helm: Path
    python: Path  # has kubernetes-validate, PyYAML and jsonschema
    hadolint: Path
    promtool: Path

    def yaml(self, path: Path) -> list[Any]:
        """The documents of a YAML file (the project's own venv has no YAML parser)."""
        code = (
            "import json, sys, yaml; "
            "json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)"
        )
        out = subprocess.run(
            [str(self.python), "-c", code, str(path)], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)


def helm(tools: Tools, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.helm), *args], capture_output=True, text=True)


def template(
    tools: Tools, chart: Path, values_file: str | None = MINIMAL, *sets: str
) -> subprocess.CompletedProcess[str]:
    """`helm template` with a file of ci/ (None: the chart's bare defaults) and --set's."""
    args = [
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBERNETES_VERSION,
    ]
    if values_file:
        args += ["-f", str(chart / "ci" / values_file)]
    for assignment in sets:
        args += ["--set", assignment]
    return helm(tools, *args)


def validate(tools: Tools, manifests: str, tmp_path: Path) -> tuple[list[dict], list[str]]:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(manifests)
    result = subprocess.run(
        [
            str(tools.python),
            str(HERE / "validate_manifests.py"),
            str(rendered),
            "--kubernetes-version",
            KUBERNETES_VERSION,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return report["resources"], report["errors"]


def rendered(
    tools: Tools, chart: Path, tmp_path: Path, values_file: str | None = MINIMAL, *sets: str
) -> list[dict]:
    """Render and validate; fail on any render or schema error."""
    result = template(tools, chart, values_file, *sets)
    assert result.returncode == 0, result.stderr
    resources, errors = validate(tools, result.stdout, tmp_path)
    assert errors == []
    return resources


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(deployment: dict) -> list[dict]:
    return container(deployment).get("env", [])
