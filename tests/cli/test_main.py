"""The `rci` entry point: --version, and the start-up warning about misspelt RCI_* variables."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from rci import __version__
from rci.cli.main import app


def test_version_flag_and_command_print_the_package_version() -> None:
    for args in (["--version"], ["version"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == __version__


def test_a_misspelt_variable_warns_with_the_closest_setting() -> None:
    result = CliRunner().invoke(app, ["version"], env={"RCI_KAFKA_BOOTSTRAPS": "broker:9092"})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == __version__  # the warning stays off stdout
    assert "RCI_KAFKA_BOOTSTRAPS is not an rci setting and is ignored; did you mean RCI_KAFKA_BOOTSTRAP?" in result.stderr


def test_valid_variables_warn_about_nothing() -> None:
    result = CliRunner().invoke(app, ["version"], env={"RCI_KAFKA_BOOTSTRAP": "broker:9092", "RCI_LOG_LEVEL": "DEBUG"})
    assert result.exit_code == 0
    assert "not an rci setting" not in result.stderr


def test_python_dash_m_rci_warns_at_start_up_too() -> None:
    run = subprocess.run([sys.executable, "-m", "rci", "version"], env={"RCI_LOGLEVEL": "DEBUG", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == __version__
    assert "did you mean RCI_LOG_LEVEL?" in run.stderr
