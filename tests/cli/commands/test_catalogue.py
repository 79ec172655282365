"""`rci replay`, `rci index backfill`, `rci forget`: registered, options checked before anything is
opened, and forgetting on an empty data dir reports "not found". The operations themselves run against
the real broker, Milvus Lite and object store in tests/streams/test_replay.py, test_backfill.py, test_forget.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app


def env(tmp_path: Path) -> dict[str, str]:
    return {"COLUMNS": "200", "RCI_DATA_DIR": str(tmp_path / "rci"), "RCI_KAFKA_BOOTSTRAP": "127.0.0.1:1"}


def test_the_commands_are_registered_with_their_options() -> None:
    runner = CliRunner()
    for args, options in [(["replay"], ["--since", "--offsets", "--batch-size"]),
                          (["index", "backfill"], ["--order", "--batch-size"]),
                          (["forget"], ["--reason"])]:  # fmt: skip
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert all(o in result.output for o in options), result.output


@pytest.mark.parametrize(
    "args, message",
    [([], "exactly one of"), (["--since", "2026-12-01T00:00:00Z", "--offsets", "0:1"], "exactly one of"),
     (["--since", "yesterday"], "not an RFC 3339 time"), (["--offsets", "0:x"], "PARTITION:OFFSET")],
)  # fmt: skip
def test_replay_refuses_a_bad_window_before_reaching_the_broker(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["replay", *args], env=env(tmp_path))
    assert result.exit_code == 2 and message in result.output, result.output


def test_backfill_of_an_invalid_catalogue_sends_nothing(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.jsonl"
    catalogue.write_text('{"video_id": "v1"}\n')
    result = CliRunner().invoke(app, ["index", "backfill", str(catalogue)], env=env(tmp_path))
    assert result.exit_code == 2 and "invalid event" in result.output, result.output


def test_forgetting_what_was_never_stored_is_not_found_and_recorded(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["forget", "v1", "v1", "v2"], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "v1: not found" in result.output and "v2: not found" in result.output
    record = tmp_path / "rci" / "forgotten.jsonl"
    assert [json.loads(line)["video_id"] for line in record.read_text().splitlines()] == ["v1", "v2"]
    assert not (tmp_path / "rci" / "milvus.db").exists()  # no index created by looking
