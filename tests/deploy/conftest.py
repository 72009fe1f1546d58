"""Fixtures of the deploy tests: the chart tools and a renderable copy of the chart."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.chart import CHART, ROOT, Tools


@pytest.fixture(scope="session")
def tools() -> Tools:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "k8s-tools.sh")], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"deploy/k8s-tools.sh failed:\n{result.stderr}")
    directory = Path(result.stdout.strip().splitlines()[-1])
    return Tools(
        directory / "bin" / "helm",
        directory / "venv" / "bin" / "python",
        directory / "bin" / "hadolint",
        directory / "bin" / "promtool",
    )


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart without its Redis dependency (which cannot be fetched here)."""
    copy = tmp_path_factory.mktemp("chart") / "clickstream"
    shutil.copytree(CHART, copy)
    chart_yaml = copy / "Chart.yaml"
    text = chart_yaml.read_text()
    stripped = re.sub(r"(?m)^dependencies:\n(?:(?:[ #-].*)?\n)*", "", text)
    assert "dependencies" not in stripped and stripped != text
    chart_yaml.write_text(stripped)
    return copy


@pytest.fixture(scope="session")
def notes_chart(chart: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart copy plus a template that renders NOTES.txt (helm template skips it)."""
    copy = tmp_path_factory.mktemp("notes") / "clickstream"
    shutil.copytree(chart, copy)
    (copy / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered-notes\ndata:\n"
        '  notes: |\n{{ include "clickstream/templates/NOTES.txt" . | indent 4 }}\n'
    )
    return copy
