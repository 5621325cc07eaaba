"""One run across two "nodes": two torchrun launchers on this machine meeting through a c10d
rendezvous on 127.0.0.1, one process each (DDP, gloo). The same global batch gives the
numbers of one process, up to float rounding, and only rank 0 writes."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TORCHRUN = Path(sys.executable).parent / "torchrun"
TIMING = {"seconds", "img_per_s"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(data: Path, out: Path) -> list[str]:
    # ResNet-8 has no dropout (whose masks each process draws for itself); flips are on and
    # precise BN too: both are drawn / summed over the global batch. Six steps at lr 0.02:
    # early training at lr 0.1 amplifies float rounding (one process with 1 or 2 threads
    # ends 20 steps ~1e-4 apart); here the two runs stay within ~1e-5, while BatchNorm over
    # each process's half batch instead of the global one puts them ~5e-4 apart.
    return ["train", "--model", "resnet8", "--act", "relu", "--epochs", "2", "--batch-size",
            "64", "--lr", "0.02", "--data-dir", str(data), "--val-size", "200",
            "--train-subset", "192",
            "--precise-bn", "2", "--threads", "1", "--no-progress", "--device", "cpu",
            "--out", str(out)]


@pytest.mark.skipif(not TORCHRUN.exists() and not shutil.which("torchrun"),
                    reason="torchrun not installed next to this Python")
def test_two_node_torchrun_equals_one_process(tiny_data, tmp_path, cli_env, revact_bin):
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else shutil.which("torchrun")
    single = tmp_path / "single"
    r = subprocess.run([revact_bin, *_train_args(tiny_data, single)], env=cli_env, timeout=300,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]

    port = _free_port()
    env = {**cli_env, "GLOO_SOCKET_IFNAME": "lo"}  # gloo on loopback only
    outs = [tmp_path / "node0", tmp_path / "node1"]
    procs = [subprocess.Popen(
        [torchrun, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
         "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "revact-test",
         "--rdzv-conf", "join_timeout=120", "--local-addr", "127.0.0.1", "-m", "revact.cli",
         *_train_args(tiny_data, out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True) for out in outs]
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:  # on a failure or a timeout: the launchers and their workers
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(logs)[-6000:]
    # Only rank 0 wrote: one launcher's --out holds the run, the other was never created.
    written = [out for out in outs if out.exists()]
    assert len(written) == 1, [sorted(p.name for p in o.iterdir()) for o in written]
    assert {p.name for p in written[0].iterdir()} == {"checkpoint.pt", "metrics.json"}
    assert "batch=64 (2 processes x 32)" in "".join(logs)

    a = json.loads((single / "metrics.json").read_text())
    b = json.loads((written[0] / "metrics.json").read_text())
    assert a["config"]["world_size"] == 1 and b["config"]["world_size"] == 2
    assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
    # 300 test images: accuracies within one image of each other (a borderline logit).
    assert abs(b["test_acc"] - a["test_acc"]) <= 100 / 300 + 1e-9
    for ha, hb in zip(a["history"], b["history"], strict=True):
        for k in ("train_loss", "val_loss", "lr"):
            assert hb[k] == pytest.approx(ha[k], rel=1e-4), (k, ha, hb)
        assert abs(hb["train_acc"] - ha["train_acc"]) <= 100 / 192 + 1e-9
