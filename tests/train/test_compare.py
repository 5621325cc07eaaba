"""``revact compare --quick`` end to end: runs, leaderboard, files, reuse, bad input."""

import csv
import json
import os
import signal
import subprocess
import time

import pytest


def test_compare_quick(tiny_data, tmp_path, cli_env, revact_bin):
    out = tmp_path / "cmp"
    cmd = [revact_bin, "compare", "--quick", "--acts", "relu,ACON-C:init=swish", "--seeds", "2",
           "--precise-bn", "2", "--model", "mbv2_tiny", "--data-dir", str(tiny_data),
           "--out", str(out)]
    r = subprocess.run([*cmd, "--jobs", "2"], env=cli_env, timeout=400, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Δ vs baseline [95% CI]" in r.stdout and "baseline" in r.stdout
    for name in ("results.json", "results.csv", "runs.csv", "results.md",
                 "learning_curves.png", "accuracy_vs_cost.png", "act_shapes.png"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert res["baseline"] == "relu" and res["seeds"] == [0, 1] and len(res["runs"]) == 4
    # Two runs at once (their wall times overlap: together they took longer than the whole
    # command), yet results keep the seed-major plan order.
    env = res["environment"]
    assert env["runs_wall_seconds"] > env["invocation_seconds"]
    assert [(r["act"], r["seed"]) for r in res["runs"]] == [
        ("relu", 0), ("acon_c:init=swish", 0), ("relu", 1), ("acon_c:init=swish", 1)]
    assert res["runs"][1]["dir"] == "runs/acon_c+init=swish/seed0"
    assert res["recipe"]["precise_bn"] == 2
    assert "precise BatchNorm (every BatchNorm's statistics re-estimated on 2" in (
        out / "results.md").read_text()
    for r in res["runs"]:
        r["act"] = r["act"].split(":")[0]
    rows = {row["act"].split(":")[0]: row for row in res["leaderboard"]}
    # The differences are recomputed here from the runs, paired by seed.
    acc = {(r["act"], r["seed"]): r["test_acc"] for r in res["runs"]}
    diffs = [acc["acon_c", s] - acc["relu", s] for s in (0, 1)]
    assert rows["acon_c"]["diff_mean"] == pytest.approx(sum(diffs) / 2)
    assert rows["relu"]["diff_mean"] == 0  # the baseline paired with itself
    assert rows["acon_c"]["diff_ci_low"] <= rows["acon_c"]["diff_mean"]
    assert rows["acon_c"]["verdict"] in ("better", "worse", "within noise")
    # One comparison: Holm leaves its paired-t p-value as it is.
    scipy_stats = pytest.importorskip("scipy.stats")
    p = scipy_stats.ttest_rel([acc["acon_c", s] for s in (0, 1)],
                              [acc["relu", s] for s in (0, 1)]).pvalue
    assert rows["acon_c"]["p_value"] == pytest.approx(p, rel=1e-9)
    assert rows["acon_c"]["p_holm"] == rows["acon_c"]["p_value"]
    assert rows["relu"]["p_value"] is None and rows["relu"]["p_holm"] is None
    assert rows["acon_c"]["macs"] > rows["relu"]["macs"]
    assert rows["acon_c"]["params"] > rows["relu"]["params"]
    # Same seed, same initial backbone: the recipe is shared, only the activation differs.
    cfgs = [json.loads((out / r["dir"] / "config.json").read_text()) for r in res["runs"]]
    assert len({json.dumps({k: v for k, v in c.items() if k not in ("act", "seed", "out")})
                for c in cfgs}) == 1
    with open(out / "results.csv") as f:
        assert {row["act"] for row in csv.DictReader(f)} == {"relu", "acon_c:init=swish"}
    assert "| activation |" in (out / "results.md").read_text()

    again = subprocess.run(cmd, env=cli_env, timeout=400, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("(reused)") == 4
    # Default: one run per core (each run has one thread), one on a GPU.
    from revact.train.compare import default_jobs

    assert f"{default_jobs(1, 'auto')} run(s) at once" in again.stdout


def test_compare_bad_input(tmp_path, cli_env, revact_bin):
    r = subprocess.run([revact_bin, "compare", "--acts", "relu,dyrelu_z"], env=cli_env,
                       timeout=120, capture_output=True, text=True)
    assert r.returncode == 2 and "dyrelu_b" in r.stderr
    r = subprocess.run([revact_bin, "compare", "--model", "mbv9", "--acts", "relu"], env=cli_env,
                       timeout=120, capture_output=True, text=True)
    assert r.returncode == 2 and "mbv2" in r.stderr
    r = subprocess.run([revact_bin, "compare", "--acts", "relu", "--data-dir",
                        str(tmp_path / "none")], env=cli_env, timeout=120,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "dataset-fashion-mnist" in r.stderr
    r = subprocess.run([revact_bin, "compare", "--acts", "relu", "--jobs", "0"], env=cli_env,
                       timeout=120, capture_output=True, text=True)
    assert r.returncode == 2 and "jobs must be at least 1, got 0" in r.stderr
    r = subprocess.run([revact_bin, "compare", "--acts", "relu,silu,relu"], env=cli_env,
                       timeout=120, capture_output=True, text=True)
    assert r.returncode == 2 and "each activation may appear once" in r.stderr


def test_help_teaches(cli_env, revact_bin):
    for sub in ("train", "compare"):
        r = subprocess.run([revact_bin, sub, "--help"], env=cli_env, timeout=60,
                           capture_output=True, text=True)
        assert r.returncode == 0 and "examples:" in r.stdout


def test_duplicates_and_gpu_default_jobs(tmp_path, cli_env, revact_bin):
    from revact.train.compare import default_jobs

    r = subprocess.run([revact_bin, "compare", "--acts", "relu", "--seeds", "0,1,0"],
                       env=cli_env, timeout=120, capture_output=True, text=True)
    assert r.returncode == 2 and "each seed may appear once" in r.stderr
    assert default_jobs(1, "cpu") == (os.cpu_count() or 1)
    assert default_jobs(2, "cpu") == max(1, (os.cpu_count() or 1) // 2)
    assert default_jobs(1, "cuda") == default_jobs(1, "cuda:1") == 1


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_interrupting_compare_stops_its_runs(tiny_data, tmp_path, cli_env, revact_bin):
    """SIGINT to compare alone (as a wrapper's timeout sends it) stops the training runs."""
    out = tmp_path / "cmp"
    proc = subprocess.Popen(
        [revact_bin, "compare", "--quick", "--epochs", "50", "--acts", "relu,silu",
         "--seeds", "1", "--jobs", "2", "--model", "mbv2_tiny", "--data-dir", str(tiny_data),
         "--out", str(out), "--no-plots"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A suite started as a background job inherits SIGINT ignored: the command under
        # test must get the default, as from a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not any((out / "runs" / a / "seed0" / "train.log").is_file() for a in ("relu", "silu")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.2)
    time.sleep(1.0)
    assert _processes_mentioning(str(out))  # the training processes are running
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_mentioning(str(out))


def test_quick_fills_in_only_what_is_not_given():
    from revact.cli import build_parser
    from revact.train.commands import _config

    def config(*argv):
        return _config(build_parser().parse_args(["train", *argv]))

    quick = config("--quick")
    assert (quick.epochs, quick.train_subset, quick.batch_size) == (1, 512, 64)
    given = config("--quick", "--epochs", "3", "--train-subset", "100", "--batch-size", "16")
    assert (given.epochs, given.train_subset, given.batch_size) == (3, 100, 16)
    assert config().epochs == 10 and config("--epochs", "4").epochs == 4


def test_compare_revcol_nano_end_to_end(tiny_data, tmp_path, cli_env, revact_bin):
    # RevCol's head is cls.classifier: the recount and the learned-shape plot rebuild the
    # network from the arguments the checkpoint stores, not from a head key of MobileNetV2's.
    out = tmp_path / "rc"
    r = subprocess.run([revact_bin, "compare", "--quick", "--acts", "relu,acon_c", "--seeds", "1",
                        "--model", "revcol_nano", "--train-subset", "128", "--val-subset", "64",
                        "--test-subset", "64", "--data-dir", str(tiny_data), "--out", str(out)],
                       env=cli_env, timeout=400, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {row["act"]: row for row in json.loads((out / "results.json").read_text())[
        "leaderboard"]}
    assert rows["acon_c"]["macs"] > rows["relu"]["macs"] > 0
    assert (out / "act_shapes.png").is_file()
