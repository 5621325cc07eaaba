"""``revact train`` and ``revact compare`` sub-commands (heavy imports inside the handlers)."""

from __future__ import annotations

import argparse
import shlex
import sys

# The demo's activations start where a short schedule can judge them: ACON-C and Meta-ACON
# as Swish (init=swish) instead of random p1/p2, DY-ReLU-C with γ = 1 (relu_init=True)
# instead of 1/3, which scales down the classifier's input (no BatchNorm follows it). Their
# paper starts lose on 80 steps for those reasons, not for the activations; the long
# replication (benchmarks/results/replication_fmnist) measures both starts.
DEFAULT_ACTS = ("relu,silu,gelu,acon_c:init=swish,meta_acon:init=swish,dyrelu_b,"
                "dyrelu_c:relu_init=True")

# Where settings come from, lowest first: TrainConfig's field defaults, then the preset of
# the command (below), then every option given on the command line (each recipe option
# defaults to None, so argparse itself tells "given" from "not given", 0 included). The
# --help texts are written from these tables, so a new option is one TrainConfig field
# plus one add_argument.
#
# The default comparison (what `make demo` runs) must finish within 7 minutes on a 2-core
# CPU: 7 activations x 3 seeds = 21 runs of 2 epochs on a 2,500-image training subset, each
# tested on 5,000 test images, one thread per run. Its time is measured by the demo itself:
# runs/compare/results.json records environment.runs_wall_seconds (the runs' sum) and
# invocation_seconds (the command), and results.md prints the first. Batch 64 and a short
# warm-up give these ~80 steps enough to leave chance level; precise BatchNorm (50 batches,
# capped at the 2,500 images) replaces running statistics that 80 steps of momentum 0.1 have
# not settled; --full keeps TrainConfig's batch 128, no warm-up, all images.
COMPARE_DEFAULTS = {"epochs": 2, "train_subset": 2500, "val_subset": 1000, "test_subset": 5000,
                    "batch_size": 64, "warmup_epochs": 0.3, "precise_bn": 50}
FULL = {"epochs": COMPARE_DEFAULTS["epochs"], "precise_bn": 50}
QUICK = {"epochs": 1, "train_subset": 512, "val_subset": 256, "test_subset": 500,
         "batch_size": 64}
# Per command: (flag, preset) pairs, the command's own first.
_PRESETS = {
    "train": (("", {}), ("--quick", QUICK)),
    "compare": (("", COMPARE_DEFAULTS), ("--full", FULL), ("--quick", QUICK)),
}


def _base_default(key: str):
    from dataclasses import fields

    from revact.train.config import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, TrainConfig

    per_opt = {"lr": DEFAULT_LR, "weight_decay": DEFAULT_WEIGHT_DECAY}.get(key)
    if per_opt:
        return ", ".join(f"{v:g} {opt}" for opt, v in per_opt.items())
    return next(f.default for f in fields(TrainConfig) if f.name == key)


def _shown(value) -> str:
    if value is None:
        return "all"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default_help(command: str, key: str) -> str:
    """``default 2; 1 with --quick``: the value each preset of ``command`` gives ``key``."""
    base = _base_default(key)
    (_, own), *others = _PRESETS[command]
    text = f"default {_shown(own.get(key, base))}"
    for flag, preset in others:
        if preset.get(key, base) != own.get(key, base):
            text += f"; {_shown(preset.get(key, base))} with {flag}"
    return text


def _selected_preset(args: argparse.Namespace) -> dict:
    flags = {"--quick": args.quick, "--full": getattr(args, "full", None)}
    presets = _PRESETS[args.settings_command]
    return next((preset for flag, preset in presets[1:] if flags[flag]), presets[0][1])


_TRAIN_EPILOG = """\
examples:
  revact train --act dyrelu_b --epochs 10 --out runs/dyb       # Fashion-MNIST, compact MBv2
  revact train --act meta_acon --opt adamw --lr 2e-3 --amp      # AdamW, bf16 autocast on CPU
  revact train --act dyrelu_b --epochs 10 --out runs/dyb --resume   # continue after a kill
  revact train --act dyrelu_b --epochs 20 --out runs/dyb --resume   # 10 more epochs
  torchrun --nproc_per_node=2 -m revact.cli train --act acon_c  # DDP, gloo on CPU
  revact train --data path/to/imagefolder --model resnet8 --act silu

Data: Fashion-MNIST from the Debian package (sudo apt-get install dataset-fashion-mnist), a
--data-dir with the four IDX files, or torchvision's download; --data PATH takes an
ImageFolder tree. 5,000 training images are held out for validation (fixed split); the test
set is evaluated once, at the end. A checkpoint is written atomically after every epoch to
OUT/checkpoint.pt; --resume continues it and ends with the same numbers as an uninterrupted run.
--resume with a larger --epochs than the checkpoint's run trains on to the new total: the
cosine LR schedule is redrawn over the new total, so the LR jumps from where the old one was
(0 after a finished run) to the new curve's value at that step, a warm restart, and the
result differs from an uninterrupted run of that length (metrics.json records it under
config.schedule_changes). A smaller --epochs is refused.
"""

_COMPARE_EPILOG = """\
examples:
  revact compare                                   # the demo: 7 activations x 3 seeds
  revact compare --acts relu,dyrelu_b --seeds 5 --epochs 5 --out runs/dyb_vs_relu
  revact compare --full --epochs 3 --out runs/full # all 55,000 training images
  revact compare --quick --acts relu,silu --seeds 2  # smoke test, seconds
  revact compare --backend ray --address HEAD:6379 --seeds 10  # one Ray task per run

Every activation gets the same network, recipe, data split and seeds; seed k gives the same
data order for all, and the same initial weights wherever the activation draws no random
numbers of its own (ReLU, SiLU, GELU, ...). Activations take options after a colon:
acon_c:init=swish, dyrelu_c:relu_init=True, dyrelu_b:reduction=8. The first activation is
the baseline: each other one gets its test-accuracy difference to it, paired by seed, with a
95% t-interval, a paired-t p-value, its Holm adjustment over the k comparisons, and a verdict
(better / worse when the adjusted p < 0.05, else within noise). Results go to
OUT/results.json, results.csv, results.md and PNG plots; the leaderboard is printed.
Re-running the same command reuses finished runs and resumes interrupted ones.

defaults (the demo): 2 epochs on a 2,500-image training subset, batch 64, warm-up 0.3
epoch, precise BatchNorm on the 2,500 images, validation on 1,000, test on 5,000 images;
1 thread per run and one run per core at once.
--full: all 55,000 training images, batch 128, no warm-up, precise BatchNorm on 50 batches,
all 5,000 validation and 10,000 test images.
--quick: 1 epoch on 512 images, test on 500 (numbers meaningless, for tests).
Explicit options override these.
"""


def _recipe_args(p: argparse.ArgumentParser, command: str) -> None:
    """The options both commands share. Each defaults to None ("not given"); its help
    shows the value it then takes (:data:`_PRESETS`, then :class:`TrainConfig`)."""

    def d(key: str) -> str:
        return _default_help(command, key)

    p.set_defaults(settings_command=command)
    g = p.add_argument_group("network and recipe")
    # Listed by hand: the registry imports torch, and --help answers without it.
    g.add_argument("--model", help="reference network: mbv2, mbv2_tiny, resnet8, resnet14, "
                                   "resnet20, revcol_nano, revcol_tiny ... revcol_xlarge "
                                   f"({d('model')})")
    g.add_argument("--epochs", type=int, help=f"epochs ({d('epochs')})")
    g.add_argument("--batch-size", type=int,
                   help=f"global batch size, split across torchrun processes ({d('batch_size')})")
    g.add_argument("--opt", choices=("sgd", "adamw"),
                   help="optimizer: sgd (Nesterov momentum) or adamw (default sgd)")
    g.add_argument("--lr", type=float, help=f"peak LR ({d('lr')})")
    g.add_argument("--momentum", type=float, help=f"SGD momentum ({d('momentum')})")
    g.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float,
                   help=f"weight decay on conv/linear kernels only ({d('weight_decay')})")
    g.add_argument("--warmup-epochs", type=float,
                   help=f"linear warm-up before cosine, in epochs ({d('warmup_epochs')})")
    g.add_argument("--label-smoothing", type=float, help=f"in [0, 1] ({d('label_smoothing')})")
    g.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="turn off random horizontal flips")
    g.add_argument("--precise-bn", type=int, metavar="N",
                   help="re-estimate every BatchNorm's running statistics on N training "
                        "batches (capped at the training set) before each validation and the "
                        f"test; 0 = off ({d('precise_bn')})")
    g.add_argument("--amp", action="store_const", const=True,
                   help="autocast: bfloat16 on CPU, float16 (with grad scaling) on CUDA")
    presets = g.add_mutually_exclusive_group()
    presets.add_argument("--quick", action="store_true",
                         help="tiny smoke run: 1 epoch, 512 training images, 500 test images "
                              "(options given explicitly win)")
    if command == "compare":
        presets.add_argument("--full", action="store_true",
                             help="all 55,000 training images, batch 128, no warm-up, all "
                                  "5,000 validation and 10,000 test images")
    dg = p.add_argument_group("data")
    dg.add_argument("--data", help="'fashion-mnist' (default) or a path to an ImageFolder tree")
    dg.add_argument("--data-dir",
                    help="folder with the Fashion-MNIST IDX files (default: search "
                         "/usr/share/datasets/fashion-mnist, $REVACT_DATA_DIR, ~/.cache/revact)")
    dg.add_argument("--no-download", dest="download", action="store_const", const=False,
                    help="never try torchvision's downloader")
    dg.add_argument("--val-size", type=int,
                    help=f"held-out validation images, at least 1 ({d('val_size')})")
    dg.add_argument("--split-seed", type=int,
                    help=f"seed of the train/val split ({d('split_seed')})")
    dg.add_argument("--train-subset", type=int,
                    help=f"train on the first N images of the (fixed) training split "
                         f"({d('train_subset')})")
    dg.add_argument("--val-subset", type=int, help=f"validate on N images ({d('val_subset')})")
    dg.add_argument("--test-subset", type=int,
                    help=f"test on N images, for smoke tests only ({d('test_subset')})")
    e = p.add_argument_group("execution")
    e.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default)")
    e.add_argument("--threads", type=int,
                   help="torch CPU threads per process (default: torch's; 1 per run in compare)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``compare`` to the ``revact`` command line."""
    fmt = argparse.RawDescriptionHelpFormatter
    t = subparsers.add_parser(
        "train", help="train a reference network with one activation",
        description="Train a reference network (compact MobileNetV2 or small ResNet) with the "
                    "chosen activation in every layer, on Fashion-MNIST or an ImageFolder.",
        epilog=_TRAIN_EPILOG, formatter_class=fmt)
    t.add_argument("--act", help="activation name, see 'revact list' (default relu)")
    t.add_argument("--seed", type=int, help="seed: initial weights and data order (default 0)")
    _recipe_args(t, "train")
    t.add_argument("--out", help="output folder (default runs/train)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue from OUT/checkpoint.pt (or CKPT); the recipe must match, "
                        "except --epochs, which may grow (the cosine schedule is then redrawn "
                        "over the new total: see below)")
    t.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bar")
    t.set_defaults(func=_train)

    c = subparsers.add_parser(
        "compare", help="fair, repeatable activation shoot-out with confidence intervals",
        description="Train the same network with each activation and several seeds, and rank "
                    "them with paired-by-seed 95% confidence intervals against the first.",
        epilog=_COMPARE_EPILOG, formatter_class=fmt)
    c.add_argument("--acts", default=DEFAULT_ACTS,
                   help="comma-separated activations; the first is the baseline "
                        "(default %(default)s)")
    c.add_argument("--seeds", default="3",
                   help="number of seeds (0..N-1) or a comma list, e.g. 0,1,2 (default 3)")
    _recipe_args(c, "compare")
    c.add_argument("--out", default=None,
                   help="output folder (default: runs/compare for the demo recipe, else "
                        "runs/compare-<preset>-<model>-<N>ep-<recipe hash>, so that two "
                        "recipes never share a folder and re-running a command finds its runs)")
    c.add_argument("--no-plots", dest="plots", action="store_false", help="skip PNG plots")
    c.add_argument("--jobs", type=int, default=None,
                   help="runs at once, each its own process (default: CPU cores // --threads "
                        "on CPU, 1 on a GPU); --backend local only")
    cl = c.add_argument_group("cluster")
    cl.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="where runs go: 'local' processes on this machine (default) or one "
                         "Ray task per run on a Ray cluster, each asking for --threads CPUs "
                         "(and a GPU with --device cuda); needs pip install 'revact[cluster]'")
    cl.add_argument("--address", metavar="ADDR",
                    help="the Ray cluster's head, HOST:6379 (default: $RAY_ADDRESS, else "
                         "'auto': the cluster this machine is part of); --backend ray only")
    c.set_defaults(func=_compare)


def _act_name(text: str) -> str:
    """``' ACON-C:init=swish'`` -> ``'acon_c:init=swish'``: the name part normalised (one
    spelling, one run folder), the options as written (``relu_init=True`` stays a bool)."""
    from revact._names import normalise_name

    name, sep, options = text.strip().partition(":")
    return normalise_name(name) + sep + options


def _check_names(acts: list[str], model: str) -> str | None:
    """An error message for an unknown activation, a bad activation option or an unknown
    model, or None."""
    from revact.activations.create_act import create_act
    from revact.models import list_models

    for a in acts:
        try:
            create_act(a, channels=8)  # builds it once, so a bad option fails here
        except ValueError as e:
            return str(e)
    if model not in list_models():
        return f"unknown model {model!r}. Known: {', '.join(list_models())}"
    return None


def _config(args: argparse.Namespace, **over):
    """The TrainConfig these arguments ask for: TrainConfig's defaults, under the selected
    preset, under every option given (``over`` last, for what the command itself sets).

    Raises:
        ValueError: a value no run could use (:meth:`TrainConfig.validate`).
    """
    from dataclasses import fields

    from revact._names import normalise_name
    from revact.train.config import TrainConfig

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    kw = {**_selected_preset(args), **given, **over}
    if "model" in kw:
        kw["model"] = normalise_name(kw["model"])
    return TrainConfig(**kw)


def _error(msg: object) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace) -> int:
    from revact.data import DataNotFoundError
    from revact.train.checkpoint import CheckpointError
    from revact.train.engine import train

    try:
        cfg = _config(args)
    except ValueError as e:
        return _error(e)
    err = _check_names([cfg.act], cfg.model)
    if err:
        return _error(err)
    try:
        train(cfg, resume=args.resume)
    except (DataNotFoundError, CheckpointError, ValueError) as e:
        return _error(e)
    except KeyboardInterrupt:
        print(f"\ninterrupted; add --resume to the same command to continue from the last "
              f"finished epoch ({cfg.out}/checkpoint.pt)", file=sys.stderr)
        return 130
    return 0


def _parse_seeds(text: str) -> list[int]:
    """``3`` → [0, 1, 2]; ``0,5,7`` → [0, 5, 7].

    Raises:
        ValueError: not a positive count or a comma list of non-negative integers.
    """
    how = f"--seeds takes a count (e.g. 3) or a comma list of seeds (e.g. 0,1,2), got {text!r}"
    try:
        items = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(how) from None
    if "," in text:
        if any(s < 0 for s in items):
            raise ValueError(f"seeds must be >= 0; {how}")
        return items
    if not items or items[0] < 1:
        raise ValueError(f"the count must be >= 1; {how}")
    return list(range(items[0]))


def _compare(args: argparse.Namespace) -> int:
    from revact.train.backends import BackendError, make_backend
    from revact.train.checkpoint import check_out_dir
    from revact.train.compare import check_out_recipe, default_jobs, plan_runs, recipe_tag

    acts = [_act_name(a) for a in args.acts.split(",") if a.strip()]
    threads = args.threads or 1
    ray = args.backend == "ray"
    try:  # everything checked here, once, before data is loaded and before any run starts
        seeds = _parse_seeds(args.seeds)
        cfg = _config(args, threads=threads)
        if not ray and args.address:
            raise ValueError("--address is for --backend ray")
        if ray and args.jobs is not None:
            raise ValueError("--jobs is for --backend local; on Ray each run asks for "
                             "--threads CPUs and the cluster's CPUs decide how many run at once")
        if ray and cfg.device.startswith("cuda:"):
            raise ValueError(f"--device {cfg.device}: on Ray each run gets one GPU of its "
                             "node; give --device cuda")
        jobs = default_jobs(threads, cfg.device) if args.jobs is None else args.jobs
        plan_runs(acts, seeds, jobs)
        err = _check_names(acts, cfg.model)
        if err:
            return _error(err)
        out = args.out or _default_out(args, cfg, recipe_tag)
        check_out_dir(out)
        check_out_recipe(out, cfg)
        backend = make_backend(args.backend, jobs, args.address)
    except (BackendError, ValueError) as e:
        return _error(e)
    try:
        backend.start()
    except BackendError as e:
        return _error(e)
    try:
        return _compare_on(args, backend, acts, seeds, cfg, out)
    finally:
        backend.close()


def _compare_on(args: argparse.Namespace, backend, acts: list[str], seeds: list[int], cfg,
                out: str) -> int:
    from revact.data import DataNotFoundError, load_data
    from revact.train.compare import run_compare
    from revact.train.config import expand_path
    from revact.train.engine import steps_per_epoch
    from revact.train.report import format_leaderboard

    try:
        # Fail here, once, with the how-to-get-it message rather than in every run.
        data = load_data(cfg.data, expand_path(cfg.data_dir), val_size=cfg.val_size,
                         split_seed=cfg.split_seed, train_subset=cfg.train_subset,
                         test_subset=cfg.test_subset, download=cfg.download)
        steps_per_epoch(cfg, data)
    except DataNotFoundError as e:
        if backend.name == "local":
            return _error(e)
        # The driver of a cluster run needs no copy: every node loads its own.
        data = None
        described = ("the data is not on this machine (each node loads its own copy; a node "
                     "without it fails its runs and says so)")
    except ValueError as e:
        return _error(e)
    if data is not None:
        # The loader's split is 5,000 validation images; runs score a fixed subset of it.
        val_note = f" (runs validate on {cfg.val_subset})" if cfg.val_subset else ""
        described = f"{data.describe()}{val_note}"
    print(f"compare: {len(acts)} activations x {len(seeds)} seeds on {cfg.model}, "
          f"{cfg.epochs} epoch(s), {backend.describe()}; {described}; results in {out}",
          flush=True)
    del data
    command = "revact " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    try:
        results = run_compare(acts, seeds, cfg, out, plots=args.plots, command=command,
                              backend=backend)
    except RuntimeError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: the running runs were stopped. Run the same command again to "
              f"continue: finished runs are reused, stopped ones resume from their last "
              f"epoch (in {out}/runs)", file=sys.stderr)
        return 130
    print()
    print(format_leaderboard(results))
    plots = " and PNG plots" if args.plots else ""
    print(f"\nwrote {out}/results.md, results.json, results.csv{plots}")
    return 0


def _default_out(args: argparse.Namespace, cfg, recipe_tag) -> str:
    """``runs/compare`` for the demo's recipe (what ``make demo`` and the README use), a
    folder named after the recipe otherwise: two recipes never collide."""
    demo = _config(argparse.Namespace(settings_command="compare", quick=False, full=False),
                   threads=cfg.threads)
    if cfg.recipe() == demo.recipe():
        return "runs/compare"
    preset = "quick" if args.quick else "full" if args.full else ""
    return f"runs/{recipe_tag(cfg, preset)}"
