"""`rci corpus make` end to end on a one-source corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app

pytestmark = pytest.mark.slow


def test_corpus_make_writes_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    result = CliRunner().invoke(app, ["corpus", "make", "--out", str(out), "--sources", "1", "--seed", "5",
                                      "--min-duration", "2", "--max-duration", "2.5", "--size", "128x96",
                                      "--photo-share", "0", "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "corpus.json").read_text())
    events = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert summary["counts"]["videos"] == len(events) == len(list((out / "media").glob("*.mp4")))
    assert summary["config"]["render"]["width"] == 128 and summary["config"]["seed"] == 5
    assert {p["subset"] for p in pairs} >= {"visual_copy", "hard_negative_title"}
    assert f"wrote {len(events)} videos" in result.output


def test_corpus_make_rejects_a_bad_size(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["corpus", "make", "--out", str(tmp_path), "--size", "big"])
    assert result.exit_code == 2
    assert not (tmp_path / "corpus.json").exists()
