"""Checks of the Helm chart, the container image, the Grafana dashboard and alert rules."""
