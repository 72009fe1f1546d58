"""The `clickstream` command: one subcommand per service or tool.

Each subcommand names the settings it reads and the function that runs it; the
CLI builds its flags from those settings, loads the one Config object, sets up
logging, prints the effective configuration and hands over.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.common import config as cfg
from services.common.errors import ClickstreamError
from services.common.logging import configure, get_logger


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str  # exposes SETTINGS and run(config) -> int
    extra: Callable[[argparse.ArgumentParser], None] | None = None


def _topics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("create", "describe"), help="what to do")


COMMANDS = (
    Command("produce", "generate realistic clickstream events", "services.producer.main"),
    Command(
        "process",
        "aggregate events into windows in Redis and publish them",
        "services.processor.main",
    ),
    Command(
        "topics",
        "create or describe the pipeline's topics",
        "services.common.topics_cli",
        _topics_args,
    ),
    Command(
        "consume",
        "the metrics dashboard: live view, log blocks or JSON lines",
        "services.consumer.main",
        lambda parser: importlib.import_module("services.consumer.main").add_arguments(parser),
    ),
    Command("api", "serve the HTTP query API and the live web view", "services.api.main"),
    Command("bench", "measure the pipeline against its targets on the local stack", "load.bench"),
    Command("profile", "profile the processor's hot path on the local stack", "load.profile"),
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


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[cfg.Setting, ...]]]:
    parser = argparse.ArgumentParser(prog="clickstream", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    settings_by_command = {}
    for command in COMMANDS:
        module = importlib.import_module(command.module)
        settings = cfg.unique_settings(cfg.SHARED, module.SETTINGS)
        settings_by_command[command.name] = settings
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        if command.extra:
            command.extra(sub)
        cfg.add_arguments(sub, settings)
    return parser, settings_by_command


def main(argv: Sequence[str] | None = None) -> int:
    parser, settings_by_command = build_parser()
    args = parser.parse_args(argv)
    try:
        config = cfg.load(settings_by_command[args.command], args)
    except cfg.ConfigError as error:
        parser.error(str(error))
    configure(config.log_level, config.log_format)
    log = get_logger(args.command)
    log.info("effective configuration", command=args.command, **config.masked())
    module = importlib.import_module(next(c.module for c in COMMANDS if c.name == args.command))
    try:
        if getattr(module, "WANTS_ARGS", False):
            return module.run(config, args)
        return module.run(config)
    except ClickstreamError as error:
        log.error(str(error), error=type(error).__name__)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
