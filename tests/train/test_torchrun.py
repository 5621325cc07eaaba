"""A real two-process DDP run under torchrun (gloo on CPU)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.skipif(not TORCHRUN.exists() and not shutil.which("torchrun"),
                    reason="torchrun not installed next to this Python")
def test_torchrun_two_processes(tiny_data, tmp_path, cli_env):
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else shutil.which("torchrun")
    out = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "revact.cli", "train",
           "--model", "mbv2_tiny", "--act", "dyrelu_b", "--epochs", "2", "--batch-size", "64",
           "--data-dir", str(tiny_data), "--val-size", "200", "--train-subset", "640",
           "--no-progress", "--device", "cpu", "--out", str(out)]
    r = subprocess.run(cmd, env=cli_env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "batch=64 (2 processes x 32)" in r.stdout  # the global batch, split
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["world_size"] == 2
    assert m["data"]["test"] == 300 and len(m["history"]) == 2
    # Each epoch covers the 640 training images once, split between the two ranks.
    assert m["history"][0]["img_per_s"] * m["history"][0]["seconds"] == pytest.approx(640)
    assert (out / "checkpoint.pt").is_file()
    # Resuming needs the same number of processes.
    single = subprocess.run(
        [str(Path(sys.executable).parent / "revact"), "train", "--model", "mbv2_tiny", "--act",
         "dyrelu_b", "--epochs", "2", "--batch-size", "64", "--data-dir", str(tiny_data),
         "--val-size", "200", "--train-subset", "640", "--device", "cpu", "--out", str(out),
         "--resume"], env=cli_env, timeout=300, capture_output=True, text=True)
    assert single.returncode == 2 and "process" in single.stderr
