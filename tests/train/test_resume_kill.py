"""Kill a real training process after its first checkpoint, resume, and match a clean run."""

import json
import os
import signal
import subprocess
import time

import torch

from revact.train.checkpoint import load_checkpoint

TIMING_KEYS = {"seconds", "img_per_s"}


def _args(revact_bin, data, out):
    return [revact_bin, "train", "--model", "mbv2_tiny", "--act", "acon_c", "--epochs", "3",
            "--batch-size", "64", "--data-dir", str(data), "--val-size", "200", "--threads", "1",
            "--no-progress", "--out", str(out), "--seed", "5", "--precise-bn", "2"]


def _without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_sigkill_then_resume_equals_uninterrupted(tiny_data, tmp_path, cli_env, revact_bin):
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    subprocess.run(_args(revact_bin, tiny_data, clean), check=True, env=cli_env, timeout=300,
                   capture_output=True)

    proc = subprocess.Popen(_args(revact_bin, tiny_data, broken), env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = broken / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up: a real crash
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (broken / "metrics.json").exists()
    killed_at = load_checkpoint(ckpt)["epoch"]
    assert 1 <= killed_at < 3

    r = subprocess.run(_args(revact_bin, tiny_data, broken) + ["--resume"], env=cli_env,
                       timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"after epoch {killed_at}/3" in r.stdout

    a = json.loads((clean / "metrics.json").read_text())
    b = json.loads((broken / "metrics.json").read_text())
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]
    # Precise BN (re-estimated before every validation) is part of the recipe and of the
    # resume guarantee: the running statistics end bit-equal too (compared below).
    assert a["config"]["precise_bn"] == b["config"]["precise_bn"] == 2
    assert _without_timing(a["history"]) == _without_timing(b["history"])
    wa = load_checkpoint(clean / "checkpoint.pt")["model"]
    wb = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_with_other_recipe_is_refused(tiny_data, tmp_path, cli_env, revact_bin):
    out = tmp_path / "run"
    args = _args(revact_bin, tiny_data, out)
    args[args.index("--epochs") + 1] = "1"
    subprocess.run(args, check=True, env=cli_env, timeout=300, capture_output=True)
    args[args.index("--act") + 1] = "silu"
    r = subprocess.run(args + ["--resume"], env=cli_env, timeout=300, capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "different run" in r.stderr and "act: checkpoint 'acon_c' vs now 'silu'" in r.stderr
