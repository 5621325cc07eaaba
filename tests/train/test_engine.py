"""The training engine in-process, checkpoints, and refusing bad checkpoints."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

from revact.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from revact.train.config import TrainConfig
from revact.train.engine import build_optimizer, train
from revact.train.results import CompareRun, RunResult


def _cfg(tiny_data, out, **kw):
    base = dict(model="mbv2_tiny", act="acon_c", epochs=3, batch_size=64, data_dir=tiny_data,
                val_size=200, out=out, threads=1, progress=False)
    return TrainConfig(**{**base, **kw})


def test_train_learns_and_writes_files(tiny_data, tmp_path):
    m = train(_cfg(tiny_data, tmp_path))
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "checkpoint.pt").is_file()
    assert [h.epoch for h in m.history] == [1, 2, 3] and m.test_acc > 40  # chance is 10%
    assert m.params > 0 and m.macs > m.act_macs > 0
    assert m.train_img_per_s > 0 and m.peak_mem_mib > 0 and m.saved_for_backward_mib > 0
    assert m.train_img_per_s == pytest.approx(
        sum(h.img_per_s * h.seconds for h in m.history) / m.train_seconds)
    assert m["test_acc"] == m.test_acc  # reads like metrics.json
    # metrics.json is the record's dictionary, and reads back into the same record.
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == m.to_dict() and RunResult.from_dict(written) == m
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 3 and state["config"]["act"] == "acon_c"
    assert state["history"] == written["history"]


def test_committed_comparison_still_reads():
    """results.json written before the typed records: same rows, same leaderboard."""
    from revact.train.compare import summarize

    path = Path(__file__).parents[2] / "benchmarks/results/compare_fmnist_mbv2/results.json"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    results = json.loads(path.read_text())
    for row in results["runs"]:
        assert CompareRun.from_dict(row).to_dict() == row
    assert summarize(results["runs"], results["acts"]) == results["leaderboard"]
    runs = [CompareRun.from_dict(r) for r in results["runs"]]
    assert summarize(runs, results["acts"]) == results["leaderboard"]


def test_activation_parameters_get_no_weight_decay():
    from revact.models import create_model

    model = create_model("mbv2_tiny", act_layer="acon_c")
    opt = build_optimizer(model, TrainConfig(opt="adamw", weight_decay=0.05))
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            if names[id(p)].endswith(("p1", "p2", "beta")):
                assert g["weight_decay"] == 0.0


def test_checkpoint_is_atomic_and_checked(tmp_path):
    path = tmp_path / "c.pt"
    state = {"config": {"act": "relu"}, "epoch": 1, "model": {"w": torch.ones(2)},
             "optimizer": {}, "scheduler": {}, "rng": {}}
    save_checkpoint(state, path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
    assert load_checkpoint(path, recipe={"act": "relu"})["epoch"] == 1
    with pytest.raises(CheckpointError, match="different run") as e:
        load_checkpoint(path, recipe={"act": "silu"})
    assert "act: checkpoint 'relu' vs now 'silu'" in str(e.value)


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    save_checkpoint({"config": {}, "epoch": 1, "model": {"w": torch.ones(1000)},
                     "optimizer": {}, "scheduler": {}, "rng": {}}, tmp_path / "ok.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "noise.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save({"state_dict": {"w": torch.ones(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a revact training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled_module.pt")
    with pytest.raises(CheckpointError, match="pickles Python objects"):
        load_checkpoint(tmp_path / "pickled_module.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_cli_refuses_bad_resume_and_bad_names(tiny_data, tmp_path, cli_env, revact_bin):
    (tmp_path / "checkpoint.pt").write_bytes(b"\x00" * 100)
    args = [revact_bin, "train", "--quick", "--data-dir", str(tiny_data),
            "--out", str(tmp_path), "--resume"]
    r = subprocess.run(args, capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 2 and "corrupt or truncated" in r.stderr
    r = subprocess.run([revact_bin, "train", "--act", "dyrelu_x"],
                       capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 2 and "dyrelu_b" in r.stderr and "Known:" in r.stderr
    r = subprocess.run([revact_bin, "train", "--model", "vgg"],
                       capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 2 and "mbv2" in r.stderr
    r = subprocess.run([revact_bin, "train", "--data-dir", str(tmp_path / "none")],
                       capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 2 and "apt-get install" in r.stderr


def test_resume_with_more_epochs_redraws_the_schedule(tiny_data, tmp_path, capsys):
    """--resume with a larger --epochs trains on; the cosine is redrawn over the new total
    (a warm restart from 0 to half the peak here), recorded; fewer epochs are refused."""
    import math

    kw = dict(epochs=1, train_subset=256, test_subset=100, val_subset=100, act="relu")
    first = train(_cfg(tiny_data, tmp_path, **kw))
    assert first.history[-1].lr == pytest.approx(0.0, abs=1e-12)  # the cosine ended at 0
    capsys.readouterr()
    longer = train(_cfg(tiny_data, tmp_path, **{**kw, "epochs": 3}), resume=True)
    log = capsys.readouterr().out
    assert "resumed from" in log and "after epoch 1/3" in log
    # No warm-up: after 1 of 3 epochs the new cosine stands at (1 + cos(pi/3)) / 2 = 0.75.
    assert "extended from 1 to 3 epochs" in log and "from 0 to 0.075" in log, log
    assert [h.epoch for h in longer.history] == [1, 2, 3]
    assert longer.history[0] == first.history[0]
    assert longer.history[1].lr == pytest.approx(0.1 * (1 + math.cos(math.pi * 2 / 3)) / 2)
    change = {"at_epoch": 1, "epochs_before": 1, "epochs_after": 3}
    assert longer.config["schedule_changes"] == [change]
    assert json.loads((tmp_path / "metrics.json").read_text())["config"][
        "schedule_changes"] == [change]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 3 and state["config"]["schedule_changes"] == [change]
    # The same (longer) recipe resumes as before, keeping the record; fewer is refused.
    again = train(_cfg(tiny_data, tmp_path, **{**kw, "epochs": 3}), resume=True)
    assert again.config["schedule_changes"] == [change] and again.test_acc == longer.test_acc
    with pytest.raises(CheckpointError, match="a run of 3 epochs.*--epochs 3 or more.*not 2"):
        train(_cfg(tiny_data, tmp_path, **{**kw, "epochs": 2}), resume=True)
