"""`rci demo`, the README's first command, end to end: real broker, Milvus Lite server, media,
trained models, worker processes, report. Its models are the session's `trained_model_dir`
(the demo's own recipe: `rci.cli.demo.prepare_models`), so the demo finds them trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rci.training.corpus.manifest import CorpusManifest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3000)]


def test_rci_demo_scores_every_sample_video_and_writes_its_report(tmp_path: Path, trained_model_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCI_")}
    # the models the demo trains come from the session's fixture (the same recipe, trained once)
    env.update(RCI_DATA_DIR=str(tmp_path / "rci"), RCI_MODEL_DIR=str(trained_model_dir), COLUMNS="160")
    run = subprocess.run([sys.executable, "-m", "rci", "demo"], env=env, capture_output=True, text=True,
                         timeout=2700)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = tmp_path / "rci" / "report"
    summary = json.loads((report / "summary.json").read_text())
    sample = CorpusManifest.load(tmp_path / "rci" / "media" / "corpus")
    assert summary["events"] == summary["scored"] == len(sample.events)  # nothing lost, nothing dead-lettered
    assert summary["reproductions"] > 0
    # retrieval finds the source itself for many reproductions (a sibling copy is the other good answer)
    assert summary["candidate_is_source"] >= summary["reproductions"] / 3, summary
    # the trained model ranks the sample's edited copies above the rest well, not yet at 0.9: the misses
    # are copies whose source retrieval did not find (README, "What to expect")
    assert summary["auc"] > 0.7, summary
    assert (report / "index.md").read_text().count("|") > 10 and (report / "scores.png").stat().st_size > 1000
    assert "deboosted" in run.stdout
