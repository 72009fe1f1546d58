"""The `clickstream` command: service commands built in, tool commands registered by `load`."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from services import cli


def test_tools_register_their_commands_through_the_entry_point_group():
    names = [command.name for command in cli.all_commands()]
    assert names == [
        "produce",
        "process",
        "topics",
        "consume",
        "api",
        "bench",
        "profile",
        "memory",
        "load",
        "chaos",
    ]


def test_an_entry_point_whose_package_is_not_installed_is_skipped():
    absent = EntryPoint("tools", "absent_tools.commands:COMMANDS", cli.ENTRY_POINT_GROUP)
    assert cli.registered_commands([absent]) == ()


def test_an_entry_point_that_fails_inside_its_package_is_an_error():
    broken = EntryPoint("broken", "load.commands:NO_SUCH_NAME", cli.ENTRY_POINT_GROUP)
    with pytest.raises(AttributeError):
        cli.registered_commands([broken])


@pytest.mark.parametrize("command", ["chaos", "bench", "profile", "load"])
def test_every_tool_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: clickstream {command}" in capsys.readouterr().out
