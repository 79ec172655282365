"""Training runs under torchrun: two CPU processes, gloo, DistributedDataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.training.ddp_worker import BATCH, EPOCHS, PAIRS

ROOT = Path(__file__).resolve().parents[2]


def test_stage1_and_stage2_train_under_torchrun_with_two_gloo_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "tests.training.ddp_worker", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps_per_epoch = PAIRS // 2 // BATCH  # each rank trains on its half of the pairs
    for r, result in enumerate(ranks):
        assert (result["rank"], result["world_size"], result["backend"]) == (r, 2, "gloo")
        for stage in ("stage1", "stage2"):
            assert result[stage]["steps"] == EPOCHS * steps_per_epoch
        assert result["stage1"]["last"] < result["stage1"]["first"]
    # gradients are all-reduced: both replicas end every stage with identical weights
    assert ranks[0]["stage1"]["digest"] == ranks[1]["stage1"]["digest"]
    assert ranks[0]["stage2"]["digest"] == ranks[1]["stage2"]["digest"]
    # and the losses each rank logs are averaged over the ranks
    assert ranks[0]["stage1"]["last"] == ranks[1]["stage1"]["last"]
