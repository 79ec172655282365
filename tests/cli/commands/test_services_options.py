"""`rci services up` refuses impossible ports with a message, before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app


@pytest.mark.parametrize("option", ["--kafka-port", "--s3-port", "--milvus-port"])
@pytest.mark.parametrize("port", ["-1", "0", "70000", "ninety"])
def test_up_refuses_an_impossible_port(tmp_path: Path, option: str, port: str) -> None:
    result = CliRunner().invoke(app, ["services", "up", "--data-dir", str(tmp_path), option, port])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert not (tmp_path / "services").exists()


def test_up_refuses_an_unknown_milvus(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["services", "up", "--data-dir", str(tmp_path), "--milvus", "cluster"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--milvus'" in result.output
    assert not (tmp_path / "services").exists()
