"""The tools' `clickstream` subcommands, registered through the `clickstream.commands`
entry-point group (pyproject.toml) so the production CLI never imports `load`."""

from __future__ import annotations

import importlib

from services.cli import Command

COMMANDS = (
    Command("bench", "measure the pipeline against its targets on the local stack", "load.bench"),
    Command("profile", "profile the processor's hot path on the local stack", "load.profile"),
    Command("memory", "measure Redis memory per window and per million events", "load.memory"),
    Command(
        "load",
        "generate, replay or record clickstream datasets",
        "load.cli",
        lambda parser: importlib.import_module("load.cli").add_arguments(parser),
    ),
    Command(
        "chaos",
        "kill processors mid-window and check every window against ground truth",
        "load.chaos",
    ),
)
