"""Settings of `revact train` / `revact compare`: explicit options win, bad values are refused
once and before any work, outputs are checked first, errors are one line (issue 11)."""

import argparse
import json
import signal
import subprocess
import time

import pytest

from revact.cli import build_parser, main
from revact.train.commands import COMPARE_DEFAULTS, QUICK, _config, _parse_seeds
from revact.train.config import TrainConfig

# An explicit value for every recipe option, each different from what any preset gives and
# falsy where the option allows it (0 used to read as "not given").
EXPLICIT = {
    "--model": ("resnet8", "model", "resnet8"),
    "--epochs": ("3", "epochs", 3),
    "--batch-size": ("32", "batch_size", 32),
    "--opt": ("adamw", "opt", "adamw"),
    "--lr": ("0.05", "lr", 0.05),
    "--momentum": ("0", "momentum", 0.0),
    "--wd": ("0", "weight_decay", 0.0),
    "--warmup-epochs": ("0", "warmup_epochs", 0.0),
    "--label-smoothing": ("0", "label_smoothing", 0.0),
    "--no-augment": (None, "augment", False),
    "--precise-bn": ("0", "precise_bn", 0),
    "--amp": (None, "amp", True),
    "--data": ("some/folder", "data", "some/folder"),
    "--data-dir": ("idx", "data_dir", "idx"),
    "--no-download": (None, "download", False),
    "--val-size": ("100", "val_size", 100),
    "--split-seed": ("7", "split_seed", 7),
    "--train-subset": ("300", "train_subset", 300),
    "--val-subset": ("50", "val_subset", 50),
    "--test-subset": ("70", "test_subset", 70),
    "--device": ("cpu", "device", "cpu"),
    "--threads": ("1", "threads", 1),
}
PRESET_FLAGS = {"train": ([], ["--quick"]), "compare": ([], ["--full"], ["--quick"])}


def _config_of(*argv):
    return _config(build_parser().parse_args(list(argv)))


def _recipe_options(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {a.option_strings[0] for g in sub._action_groups
            if g.title in ("network and recipe", "data", "execution")
            for a in g._group_actions if a.dest not in ("quick", "full")}


@pytest.mark.parametrize("command", ["train", "compare"])
def test_every_option_given_explicitly_wins_over_every_preset(command):
    # Issue 11, defect 1: `compare --warmup-epochs 0` used the demo's 0.3.
    assert _recipe_options(command) == set(EXPLICIT)  # a new option needs a line here
    for preset in PRESET_FLAGS[command]:
        for option, (text, field, want) in EXPLICIT.items():
            argv = [command, *preset, option] + ([text] if text is not None else [])
            got = getattr(_config_of(*argv), field)
            assert got == want, f"{' '.join(argv)}: {field} = {got!r}"


def test_compare_writes_an_explicit_zero_into_results(tiny_data, tmp_path, cli_env,
                                                     revact_bin):
    # Issue 11, defect 1, through the command: results.json said warmup_epochs 0.3.
    out = tmp_path / "cmp"
    r = _run(revact_bin, cli_env, "compare", "--acts", "relu", "--seeds", "1", "--epochs", "1",
             "--train-subset", "200", "--val-subset", "100", "--test-subset", "100", "--model",
             "mbv2_tiny", "--data-dir", str(tiny_data), "--no-plots", "--warmup-epochs", "0",
             "--out", str(out))
    assert r.returncode == 0, r.stderr
    recipe = json.loads((out / "results.json").read_text())["recipe"]
    assert recipe["warmup_epochs"] == 0.0 and recipe["batch_size"] == 64  # the rest: demo's


def test_presets_fill_in_what_is_not_given():
    assert _config_of("compare").recipe() == TrainConfig(**COMPARE_DEFAULTS).recipe()
    full = _config_of("compare", "--full")
    assert (full.epochs, full.batch_size, full.warmup_epochs, full.train_subset) == (
        2, 128, 0.0, None)
    assert _config_of("compare", "--quick").recipe() == TrainConfig(**QUICK).recipe()
    assert _config_of("train").recipe() == TrainConfig().recipe()


def test_quick_and_full_exclude_each_other(capsys):
    # Issue 11, defect 9: --quick silently overrode --full.
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["compare", "--quick", "--full"])
    assert e.value.code == 2
    assert "--full: not allowed with argument --quick" in capsys.readouterr().err


def test_help_shows_defaults_and_a_single_percent(capsys):
    # Issue 11, defect 9: `compare --help` printed "95%%".
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "95%%" not in text and "paired-by-seed 95% confidence" in text
    assert "warm-up before cosine, in epochs (default 0.3; 0 with --full; 0 with --quick)" in text
    assert "(default 2500; all with --full; 512 with --quick)" in text
    assert "peak LR (default 0.1 sgd, 0.002 adamw)" in text


def test_batch_in_the_log_reads_as_global():
    # Issue 11, defect 9: "batch=64 x2 proc" read as 64 per process.
    from revact.train.engine import _batch_text

    assert _batch_text(64, 1) == "64"
    assert _batch_text(64, 2) == "64 (2 processes x 32)"


@pytest.mark.parametrize(("field", "value", "match"), [
    ("lr", -1.0, "learning rate must be > 0, got -1.0"),
    ("val_size", 0, "validation size must be >= 1"),
    ("val_size", -5, "validation size must be >= 1"),
    ("label_smoothing", 2.0, r"label smoothing must be in \[0, 1\], got 2.0"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
    ("weight_decay", -1e-4, "weight decay must be >= 0"),
    ("warmup_epochs", -1.0, "warm-up epochs must be in"),
    ("train_subset", 0, "train subset must be >= 1 images, got 0"),
    ("test_subset", -3, "test subset must be >= 1 images, got -3"),
    ("threads", 0, "threads must be >= 1"),
    ("seed", -1, "seed must be >= 0"),
])
def test_recipe_values_no_run_could_use_are_refused(field, value, match):
    # Issue 11, defects 4, 5, 6: these reached the workers, or ran and printed "val acc 0.00%".
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_seeds_errors_say_what_is_expected():
    # Issue 11, defect 6: "invalid literal for int()", "no seeds given".
    assert _parse_seeds("3") == [0, 1, 2] and _parse_seeds("0,5,7") == [0, 5, 7]
    for bad in ("a,b", "a", "-1", "0", "1,-2", ""):
        with pytest.raises(ValueError, match=r"--seeds takes a count \(e.g. 3\) or a comma list"):
            _parse_seeds(bad)


def test_plot_errors_are_one_line(tmp_path, capsys):
    # Issue 11, defect 6: both were tracebacks.
    out = str(tmp_path / "p.png")
    assert main(["plot", "--acts", "relu,nosuch", "--out", out]) == 2
    assert capsys.readouterr().err.startswith("error: unknown activation 'nosuch'. Known:")
    assert main(["plot", "--range", "5", "-5", "--out", out]) == 2
    assert capsys.readouterr().err == "error: --range MIN MAX needs MIN < MAX, got 5 -5\n"
    (tmp_path / "file").write_text("")
    assert main(["plot", "--acts", "relu", "--out", str(tmp_path / "file" / "p.png")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write --out")
    assert not (tmp_path / "p.png").exists()


def test_compare_folders_differ_by_recipe_and_the_demo_keeps_runs_compare(tmp_path):
    # Issue 11, defect 7: the README's `compare --full --epochs 3 --model resnet14` failed
    # right after `make demo`, both writing into runs/compare.
    from revact.train.commands import _default_out
    from revact.train.compare import check_out_recipe, recipe_tag

    def out_of(*argv):
        args = build_parser().parse_args(["compare", *argv])
        return _default_out(args, _config(args, threads=1), recipe_tag)

    assert out_of() == "runs/compare" == out_of("--acts", "relu,silu", "--seeds", "5")
    readme = out_of("--full", "--epochs", "3", "--model", "resnet14")
    assert readme.startswith("runs/compare-full-resnet14-3ep-")
    assert readme == out_of("--full", "--epochs", "3", "--model", "resnet14")  # re-run: same
    assert len({readme, out_of("--full", "--epochs", "3", "--model", "resnet14", "--lr", "0.05"),
                out_of("--warmup-epochs", "0"), out_of("--quick")}) == 4
    # An explicit --out holding another recipe: refused before any run, saying what to do.
    demo, other = _config_of("compare"), _config_of("compare", "--epochs", "3")
    run = tmp_path / "runs" / "relu" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(demo.to_dict()))
    check_out_recipe(tmp_path, demo)
    with pytest.raises(ValueError, match=r"another recipe \(epochs 2 there, 3 now\). Give "
                                         r"another --out for this one, or delete"):
        check_out_recipe(tmp_path, other)


def _run(revact_bin, cli_env, *argv, cwd=None):
    return subprocess.run([revact_bin, *argv], capture_output=True, text=True, env=cli_env,
                          timeout=300, cwd=cwd)


def test_bad_values_fail_once_before_any_run(tiny_data, tmp_path, cli_env, revact_bin):
    # Issue 11, defect 4: a worker's traceback and a half-made run folder.
    base = ["compare", "--quick", "--acts", "relu", "--seeds", "1", "--model", "mbv2_tiny",
            "--data-dir", str(tiny_data)]
    for extra, message in ((["--lr", "-1"], "error: learning rate must be > 0, got -1.0\n"),
                           (["--batch-size", "100000"], "error: 512 training images give no "
                            "full batch of 100000; lower --batch-size\n")):
        out = tmp_path / extra[0].strip("-")
        r = _run(revact_bin, cli_env, *base, *extra, "--out", str(out))
        assert r.returncode == 2 and r.stderr == message, r.stderr
        assert not out.exists()
    # Issue 11, defects 5 and 6, through `revact train`.
    for extra, message in ((["--val-size", "0"], "validation size must be >= 1"),
                           (["--label-smoothing", "2"], "label smoothing must be in [0, 1]")):
        r = _run(revact_bin, cli_env, "train", "--quick", "--model", "mbv2_tiny", "--data-dir",
                 str(tiny_data), "--out", str(tmp_path / "t"), *extra)
        assert r.returncode == 2 and r.stderr.startswith(f"error: {message}"), r.stderr
        assert "Traceback" not in r.stderr + r.stdout and "epoch" not in r.stdout


def test_out_is_checked_before_any_work(tmp_path, cli_env, revact_bin):
    # Issue 11, defect 3: a traceback, and `train` only after a full epoch. The data folder
    # here does not exist: the --out error must come before anything looks for data.
    (tmp_path / "afile").write_text("")
    no_data = ["--data-dir", str(tmp_path / "none"), "--no-download"]
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        for argv in (["train", "--quick", *no_data], ["compare", "--quick", "--acts", "relu",
                                                      *no_data]):
            r = _run(revact_bin, cli_env, *argv, "--out", str(out))
            assert r.returncode == 2, r.stderr
            assert r.stderr == (f"error: --out {out}: {tmp_path / 'afile'} is an existing "
                                f"file; --out must name a folder (give another path, or move "
                                f"the file away)\n")


def test_two_recipes_without_out_both_run(tiny_data, tmp_path, cli_env, revact_bin):
    # Issue 11, defect 7, end to end: a second recipe right after the first, no --out.
    base = ["compare", "--quick", "--acts", "relu", "--seeds", "1", "--model", "mbv2_tiny",
            "--data-dir", str(tiny_data), "--no-plots"]
    first = _run(revact_bin, cli_env, *base, cwd=tmp_path)
    second = _run(revact_bin, cli_env, *base, "--epochs", "2", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(f.startswith("compare-quick-mbv2_tiny-") for f in folders)
    assert f"wrote runs/{folders[1]}/results.md" in second.stdout + first.stdout


def test_ctrl_c_during_compare_is_one_line_and_resumes(tiny_data, tmp_path, cli_env,
                                                       revact_bin):
    # Issue 11, defect 6: Ctrl-C printed a traceback; resuming afterwards must keep working.
    out = tmp_path / "cmp"
    argv = [revact_bin, "compare", "--quick", "--epochs", "4", "--acts", "relu", "--seeds", "1",
            "--jobs", "1", "--model", "mbv2_tiny", "--data-dir", str(tiny_data), "--out",
            str(out), "--no-plots"]
    # A suite started as a background job inherits SIGINT ignored: the command under test
    # must get the default, as from a terminal.
    proc = subprocess.Popen(argv, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                        signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / "runs" / "relu" / "seed0" / "checkpoint.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: the running runs were stopped. Run the same command again" in err
    again = subprocess.run(argv, env=cli_env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in (out / "runs" / "relu" / "seed0" / "train.log").read_text()


def test_namespace_without_presets_uses_trainconfig():
    args = argparse.Namespace(settings_command="train", quick=False, lr=0.0)
    with pytest.raises(ValueError, match="learning rate must be > 0, got 0.0"):
        _config(args)
