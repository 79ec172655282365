"""benchmarks.bench_uploads at a tiny size: a real H.264 + AAC upload from ffmpeg, every part timed, the
worker's own features call timed, and the whole compared with the sum of its parts."""

from __future__ import annotations

import re
import shutil

import pytest

from benchmarks import bench_uploads

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI (scripts/bootstrap.sh installs it)")
@pytest.mark.timeout(600)
def test_a_small_run_times_every_part_and_the_whole(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_uploads.main(["--durations", "4", "--shapes", "96x160", "--reps", "1", "--frames", "4", "--no-record"]) == 0
    printed = capsys.readouterr().out
    rows = dict(re.findall(r"\| 4 s 96x160 portrait \| ([^|]+?) \| ([^|]*?) \|", printed))
    for part in ("decode", "visual (SSCD, centre squares)", "visual (SSCD, whole frames)", "audio fingerprint", "text",
                 "frame sheet", "whole (features_for)"):
        assert float(rows[part]) > 0, (part, rows)  # each really ran: it took time
    ratio = float(re.search(r"whole / sum of the parts \(CPU\) \|  \| ([0-9.]+)", printed).group(1))
    assert 0.5 < ratio < 3.0, printed  # the whole does the parts' work, once
