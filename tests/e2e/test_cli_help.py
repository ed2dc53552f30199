"""Every `ticketguard` command and sub-command answers `--help` with a description."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import typer
from typer.testing import CliRunner

from ticketguard.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if hasattr(group, "commands"):  # a group (Typer ships its own click)
        for name, command in group.commands.items():
            found += _commands(command, (*path, name))
    return found


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    names = {path[0] for path in commands if path}
    assert {"db", "simulate", "import", "train", "evaluate", "models", "etl", "retention", "jobs"} <= names
    runner = CliRunner()
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"{' '.join(path)} --help failed:\n{result.output}"
        assert "Usage:" in result.output
    undocumented = [
        " ".join(path)
        for path in commands[1:]
        if not (_lookup(root, path).help or _lookup(root, path).short_help)
    ]
    assert undocumented == [], f"commands without help text: {undocumented}"


def _lookup(root: Any, path: tuple[str, ...]) -> Any:
    command = root
    for name in path:
        command = command.commands[name]
    return command


def test_console_script_runs() -> None:
    """The installed entry point (not just the Typer object) starts and lists the commands."""
    result = subprocess.run(
        [sys.executable, "-m", "ticketguard", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "simulate" in result.stdout
    assert "db" in result.stdout
