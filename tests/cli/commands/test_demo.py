"""`rci demo`'s options: --timeout (like rci tail), with the old --timeout-s kept as a hidden alias."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import rci.cli.demo
from rci.cli.main import app


class _Result:
    auc = None


@pytest.fixture
def options(monkeypatch: pytest.MonkeyPatch) -> list:
    seen: list = []

    class FakeDemo:
        def __init__(self, _settings, demo_options) -> None:
            seen.append(demo_options)

        def run(self) -> _Result:
            return _Result()

    monkeypatch.setattr(rci.cli.demo, "Demo", FakeDemo)
    return seen


@pytest.mark.parametrize(("args", "timeout_s"), [([], 900.0), (["--timeout", "30"], 30.0), (["--timeout-s", "45"], 45.0)])
def test_timeout_option_and_its_old_name(tmp_path: Path, options: list, args: list[str], timeout_s: float) -> None:
    result = CliRunner().invoke(app, ["demo", *args], env={"RCI_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert options[-1].timeout_s == timeout_s


def test_help_shows_timeout_not_the_alias(tmp_path: Path) -> None:
    shown = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "200"}).output
    assert "--timeout " in shown and "--timeout-s" not in shown


def test_a_negative_timeout_is_a_message(tmp_path: Path, options: list) -> None:
    result = CliRunner().invoke(app, ["demo", "--timeout", "-1"])
    assert result.exit_code == 2 and "Invalid value for '--timeout'" in result.output
    assert options == []
