"""`rci index`: the command is registered and documents its options (the rebuild itself runs against the
real broker and Milvus Lite in tests/streams/test_reindex.py, through this command too)."""

from __future__ import annotations

from typer.testing import CliRunner

from rci.cli.main import app


def test_index_rebuild_is_a_registered_command_with_its_options():
    runner = CliRunner()
    group = runner.invoke(app, ["index", "--help"], env={"COLUMNS": "200"})
    assert group.exit_code == 0, group.output
    assert "rebuild" in group.output
    result = runner.invoke(app, ["index", "rebuild", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--dry-run" in result.output and "--batch-size" in result.output
