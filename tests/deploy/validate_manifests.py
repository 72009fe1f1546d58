"""Validate rendered Kubernetes manifests offline; print them as JSON.

Runs under the chart tools' own Python (deploy/k8s-tools.sh installs it with
kubernetes-validate, PyYAML and jsonschema), not the project's virtualenv:

    <tools>/bin/python tests/deploy/validate_manifests.py rendered.yaml --kubernetes-version 1.33

Built-in kinds are checked strictly (unknown fields are errors) against the Kubernetes
JSON schemas that the kubernetes-validate package bundles. The custom resources the chart
renders (Strimzi KafkaTopic, Prometheus Operator ServiceMonitor, KEDA ScaledObject and
TriggerAuthentication) have no bundled schema: they are checked against the small
schemas in crd-schemas/, which cover the fields the chart writes. Any other kind without
a schema is an error, so nothing passes unchecked.

Prints {"resources": [...], "errors": [...]} and exits 1 when there are errors, 2 when
the file is not YAML.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

CRD_SCHEMAS = pathlib.Path(__file__).with_name("crd-schemas")


def crd_schema(resource: dict) -> dict | None:
    group_version = resource["apiVersion"].replace("/", "_")
    path = CRD_SCHEMAS / f"{resource['kind'].lower()}-{group_version}.json"
    return json.loads(path.read_text()) if path.exists() else None


def validate(resource: dict, kubernetes_version: str) -> str | None:
    """None when valid, else a one-line reason."""
    name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
    schema = crd_schema(resource)
    if schema is not None:
        try:
            jsonschema.Draft202012Validator(schema).validate(resource)
        except jsonschema.ValidationError as error:
            path = ".".join(str(part) for part in error.absolute_path)
            return f"{name}: {path}: {error.message}"
        return None
    try:
        kubernetes_validate.validate(resource, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        return f"{name}: {path}: {error.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"{name}: no schema for {resource['apiVersion']} {resource['kind']}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", type=pathlib.Path)
    parser.add_argument("--kubernetes-version", default="1.33")
    args = parser.parse_args()
    try:
        resources = [doc for doc in yaml.safe_load_all(args.manifests.read_text()) if doc]
    except yaml.YAMLError as error:
        print(f"{args.manifests}: not YAML: {error}", file=sys.stderr)
        return 2
    errors = [
        reason for reason in (validate(r, args.kubernetes_version) for r in resources) if reason
    ]
    json.dump({"resources": resources, "errors": errors}, sys.stdout)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
