"""Which metric names a PromQL expression (or a Grafana query) refers to, and which the
services export.

A small lexer rather than a PromQL parser: it removes what cannot be a metric name (string
literals, label matchers, range selectors, grouping clauses, Grafana variables, numbers),
then every identifier left that is not a function call or a keyword is a metric name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# Grafana's label_values(metric, label): the second argument is a label, not a metric.
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(([^,()]*),\s*[A-Za-z_]\w*\s*\)")
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
# Not preceded by a word character or dot, so a number's exponent (1e3), a duration (5m)
# or a decimal (0.99) never matches; a following "(" marks a function call.
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by one PromQL expression or Grafana variable query."""
    text = _STRINGS.sub(" ", expr)
    text = _LABEL_VALUES.sub(r"\1", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _VARIABLES.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS:
            continue
        names.add(name)
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    """The PromQL of every panel target (rows included) and every query variable."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield query["query"] if isinstance(query, dict) else query


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "info": ("_info",),
    "gauge": ("",),
    "unknown": ("",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def exported_names(registry: Any) -> set[str]:
    """Every sample name a prometheus_client registry can expose, whether or not a labelled
    metric has a child yet (a labelled counter exposes no sample before its first .labels())."""
    names = set()
    for family in registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
