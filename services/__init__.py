"""The pipeline's services: producer, processor, consumer and the `clickstream` CLI.

Layers (lowest first): services.common <- statestore <- services.{producer,
processor, consumer, cli} <- load <- tests. This package may import
services.common and statestore; never load or tests (tools register their
commands through an entry point instead, see services.cli).
"""
