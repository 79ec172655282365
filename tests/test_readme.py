"""The README's commands are the project's: its two set-up commands are what the scripts and CI run,
and every `rci ...` line in its shell blocks names a registered command with options it accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rci.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def shell_lines() -> list[str]:
    """Each command line of the README's ```bash blocks, comments dropped, `&&` / `&` chains split."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL):
        for line in block.splitlines():
            code = line.split("  #")[0].strip()
            lines += [part.strip().rstrip("&").strip() for part in code.split("&&") if part.strip()]
    return [line for line in lines if line]


def rci_lines() -> list[str]:
    return [line for line in shell_lines() if line.startswith("rci ")]


def test_the_two_commands_are_the_scripts_ci_runs() -> None:
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^bash (scripts/\S+)", section, flags=re.MULTILINE)
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    for script in commands:
        assert "bash scripts/bootstrap.sh" in (ROOT / script).read_text(), script  # each sets up a fresh machine
    assert "exec bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_shows_rci_commands() -> None:
    assert len(rci_lines()) >= 15, rci_lines()  # the parser finds them: the next test is not vacuous


@pytest.mark.parametrize("line", rci_lines())
def test_each_rci_line_names_a_command_and_options_it_has(line: str) -> None:
    words = shlex.split(line)[1:]
    command = typer.main.get_command(app)
    path = []
    while hasattr(command, "commands") and words and words[0] in command.commands:  # a group (typer vendors click)
        path.append(words[0])
        command = command.commands[path[-1]]
        words = words[1:]
    assert path, f"{line!r}: no such rci command"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in known]
    assert not unknown, f"{line!r}: rci {' '.join(path)} has no option {unknown}"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
