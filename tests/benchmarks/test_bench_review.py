"""benchmarks.bench_review at a small size: it fills the topics and the feature store, starts `rci review`,
loads detail pages in headless Chromium with the heat map image, and prints its figures."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import bench_review

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")), reason="needs chromium and chromedriver")
@pytest.mark.timeout(600)
def test_a_small_run_measures_every_page_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_review.main(["--scores", "300", "--pages", "2", "--rounds", "2", "--no-record"]) == 0
    printed = capsys.readouterr().out
    assert "| detail pages x loads | 2 x 2 |" in printed and "| scores on the topic | 300 |" in printed
    assert "load event, p95 (ms)" in printed and "frame sheet, 32 frames (ms)" in printed
