"""benchmarks.bench_milvus_server at a tiny size on the real standalone server: every column measured, the
copies found (recall@1 against exact search), and the exact search's aggregation checked by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import bench_milvus_server
from rci.services.milvus_server import standalone_problem

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_exact_search_scores_a_video_by_its_best_frame_pair() -> None:
    stored = np.zeros((3, 2, 4), np.float32)
    stored[0] = [[1, 0, 0, 0], [0, 1, 0, 0]]
    stored[1] = [[0, 0, 1, 0], [0.6, 0.8, 0, 0]]  # one frame close to the query's second frame
    stored[2] = [[0, 0, 0, 1], [0, 0, 0, 1]]
    query = np.array([[[0, 0, 0.6, 0.8], [0.6, 0.8, 0, 0]]], np.float32)
    assert list(bench_milvus_server.exact_best(query, stored)) == [1]


@pytest.mark.skipif(standalone_problem() is not None, reason=f"no Milvus standalone server: {standalone_problem()}")
@pytest.mark.timeout(600)
def test_a_small_run_on_the_standalone_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_milvus_server.main(["--videos", "200", "--frames", "4", "--dim", "64", "--queries", "16", "--no-record"]) == 0
    printed = capsys.readouterr().out
    [row] = re.findall(r"^\| 200 \| 800 \|(.*)\|$", printed, flags=re.M)[-1:]
    cells = [float(c) for c in row.split("|")]
    assert all(c >= 0 for c in cells) and cells[0] > 0, cells  # insert vectors/s
    assert cells[6] >= 0.9, cells  # recall@1: noisy copies of stored videos are found
