"""`rci export`: a file that is no MatchLite checkpoint is a message, not a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rci.cli.main import app


def test_export_refuses_a_file_that_is_no_checkpoint(tmp_path: Path) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("these are notes, not weights\n")
    env = {"RCI_DATA_DIR": str(tmp_path / "rci"), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["export", "--checkpoint", str(notes), "--out", str(tmp_path / "m.onnx")], env=env)
    assert result.exit_code == 1, result.output
    assert "notes.pt is not a MatchLite checkpoint" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert not (tmp_path / "m.onnx").exists()
