"""The `clickstream` command: one subcommand per service or tool.

Each subcommand names the settings it reads and the function that runs it; the
CLI builds its flags from those settings, loads the one Config object, sets up
logging, prints the effective configuration and hands over.

The services' own commands are listed here. Tools (bench, profile, load, chaos)
live in the `load` package, a layer above the services, and register themselves
through the `clickstream.commands` entry-point group (pyproject.toml): this
module never names them, and an install without `load` (the container image)
simply does not offer them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from services.common import config as cfg
from services.common.errors import ClickstreamError
from services.common.logging import configure, get_logger

ENTRY_POINT_GROUP = "clickstream.commands"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str  # exposes SETTINGS and run(config) -> int
    extra: Callable[[argparse.ArgumentParser], None] | None = None


def _topics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("create", "describe"), help="what to do")


SERVICE_COMMANDS = (
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
)


def _is_missing(entry_point: EntryPoint, error: ModuleNotFoundError) -> bool:
    """The entry point's own package is absent (declared in metadata, not installed)."""
    module = entry_point.module
    return error.name is not None and (module == error.name or module.startswith(error.name + "."))


def registered_commands(
    found: Iterable[EntryPoint] | None = None,
) -> tuple[Command, ...]:
    """Commands other packages register under ENTRY_POINT_GROUP, in their declared order.

    An entry point names one Command or a sequence of them. One whose package is not
    installed is skipped; any other import error is a bug and is raised.
    """
    commands: list[Command] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP) if found is None else found:
        try:
            registered = entry_point.load()
        except ModuleNotFoundError as error:
            if _is_missing(entry_point, error):
                continue
            raise
        commands.extend([registered] if isinstance(registered, Command) else registered)
    return tuple(commands)


def all_commands() -> tuple[Command, ...]:
    commands = SERVICE_COMMANDS + registered_commands()
    names = [command.name for command in commands]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise RuntimeError(f"commands registered twice: {', '.join(duplicated)}")
    return commands


def build_parser(
    commands: Sequence[Command] | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, tuple[cfg.Setting, ...]]]:
    parser = argparse.ArgumentParser(prog="clickstream", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    settings_by_command = {}
    for command in all_commands() if commands is None else commands:
        module = importlib.import_module(command.module)
        settings = cfg.unique_settings(cfg.SHARED, module.SETTINGS)
        settings_by_command[command.name] = settings
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        if command.extra:
            command.extra(sub)
        cfg.add_arguments(sub, settings)
    return parser, settings_by_command


def main(argv: Sequence[str] | None = None) -> int:
    commands = all_commands()
    parser, settings_by_command = build_parser(commands)
    args = parser.parse_args(argv)
    try:
        config = cfg.load(settings_by_command[args.command], args)
    except cfg.ConfigError as error:
        parser.error(str(error))
    configure(config.log_level, config.log_format)
    log = get_logger(args.command)
    log.info("effective configuration", command=args.command, **config.masked())
    module = importlib.import_module(next(c.module for c in commands if c.name == args.command))
    try:
        if getattr(module, "WANTS_ARGS", False):
            return module.run(config, args)
        return module.run(config)
    except ClickstreamError as error:
        log.error(str(error), error=type(error).__name__)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
