"""``revact train`` and ``revact compare`` sub-commands (heavy imports inside the handlers)."""

from __future__ import annotations

import argparse
import shlex
import sys

DEFAULT_ACTS = "relu,silu,mish,gelu,acon_c,meta_acon,dyrelu_b,dyrelu_c"

# The default comparison (what `make demo` runs) must finish within 10 minutes on a 2-core
# CPU: 8 activations x 3 seeds = 24 runs of 2 epochs on a 2,500-image training subset, each
# tested on 5,000 test images (one thread per run: 8 minutes one at a time, 4 with one run
# per core). Batch 64 and a short warm-up give these ~80 steps enough to leave chance level;
# --full keeps batch 128, no warm-up.
COMPARE_DEFAULTS = {"epochs": 2, "train_subset": 2500, "val_subset": 1000, "test_subset": 5000,
                    "batch_size": 64, "warmup_epochs": 0.3}
QUICK = {"epochs": 1, "train_subset": 512, "val_subset": 256, "test_subset": 500,
         "batch_size": 64}

_TRAIN_EPILOG = """\
examples:
  revact train --act dyrelu_b --epochs 10 --out runs/dyb       # Fashion-MNIST, compact MBv2
  revact train --act meta_acon --opt adamw --lr 2e-3 --amp      # AdamW, bf16 autocast on CPU
  revact train --act dyrelu_b --epochs 10 --out runs/dyb --resume   # continue after a kill
  torchrun --nproc_per_node=2 -m revact.cli train --act acon_c  # DDP, gloo on CPU
  revact train --data path/to/imagefolder --model resnet8 --act silu

Data: Fashion-MNIST from the Debian package (sudo apt-get install dataset-fashion-mnist), a
--data-dir with the four IDX files, or torchvision's download; --data PATH takes an
ImageFolder tree. 5,000 training images are held out for validation (fixed split); the test
set is evaluated once, at the end. A checkpoint is written atomically after every epoch to
OUT/checkpoint.pt; --resume continues it and ends with the same numbers as an uninterrupted run.
"""

_COMPARE_EPILOG = """\
examples:
  revact compare                                   # the demo: 8 activations x 3 seeds, ~5 min
  revact compare --acts relu,dyrelu_b --seeds 5 --epochs 5 --out runs/dyb_vs_relu
  revact compare --full --epochs 3 --out runs/full # all 55,000 training images
  revact compare --quick --acts relu,silu --seeds 2  # smoke test, seconds

Every activation gets the same network, recipe, data split and seeds; seed k gives the same
initial weights (outside the activations) and data order for all. The first activation is the
baseline: each other one gets its test-accuracy difference to it, paired by seed, with a 95%
t-interval and a verdict (better / worse / within noise). Results go to OUT/results.json,
results.csv, results.md and PNG plots; the leaderboard is printed. Re-running the same command
reuses finished runs and resumes interrupted ones.

defaults (the demo): 2 epochs on a 2,500-image training subset, batch 64, warm-up 0.3
epoch, validation on 1,000, test on 5,000 images; 1 thread per run and one run per core at
once: the 24 runs finish in about 4 minutes on 2 CPU cores (8 with --jobs 1).
--full: all 55,000 training images, batch 128, no warm-up, all 5,000 validation and
10,000 test images.
--quick: 1 epoch on 512 images, test on 500 (numbers meaningless, for tests).
Explicit options override these.
"""


def _recipe_args(p: argparse.ArgumentParser, epochs: int) -> None:
    g = p.add_argument_group("network and recipe")
    g.add_argument("--model", default="mbv2",
                   help="reference network: mbv2 (default), mbv2_tiny, resnet8, resnet14, "
                        "resnet20")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"epochs (default {epochs}; {QUICK['epochs']} with --quick)")
    p.set_defaults(default_epochs=epochs)
    g.add_argument("--batch-size", type=int, default=None,
                   help="global batch size, split across torchrun processes (default 128)")
    g.add_argument("--opt", choices=("sgd", "adamw"), default="sgd",
                   help="optimizer (default sgd with Nesterov momentum)")
    g.add_argument("--lr", type=float, default=None, help="peak LR (default 0.1 sgd, 2e-3 adamw)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    g.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=None,
                   help="weight decay on conv/linear kernels only (default 5e-4 sgd, 0.05 adamw)")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before cosine")
    g.add_argument("--label-smoothing", type=float, default=0.1, help="default %(default)s")
    g.add_argument("--no-augment", dest="augment", action="store_false",
                   help="turn off random horizontal flips")
    g.add_argument("--amp", action="store_true",
                   help="autocast: bfloat16 on CPU, float16 (with grad scaling) on CUDA")
    d = p.add_argument_group("data")
    d.add_argument("--data", default="fashion-mnist",
                   help="'fashion-mnist' (default) or a path to an ImageFolder tree")
    d.add_argument("--data-dir", default=None,
                   help="folder with the Fashion-MNIST IDX files (default: search "
                        "/usr/share/datasets/fashion-mnist, $REVACT_DATA_DIR, ~/.cache/revact)")
    d.add_argument("--no-download", dest="download", action="store_false",
                   help="never try torchvision's downloader")
    d.add_argument("--val-size", type=int, default=5000, help="held-out validation images")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the train/val split")
    d.add_argument("--train-subset", type=int, default=None,
                   help="train on the first N images of the (fixed) training split")
    d.add_argument("--val-subset", type=int, default=None, help="validate on N images")
    d.add_argument("--test-subset", type=int, default=None,
                   help="test on N images (smoke tests only; final numbers use all)")
    e = p.add_argument_group("execution")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    e.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    e.add_argument("--quick", action="store_true",
                   help="tiny smoke run: 1 epoch, 512 training images, 500 test images "
                        "(options given explicitly win)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``compare`` to the ``revact`` command line."""
    fmt = argparse.RawDescriptionHelpFormatter
    t = subparsers.add_parser(
        "train", help="train a reference network with one activation",
        description="Train a reference network (compact MobileNetV2 or small ResNet) with the "
                    "chosen activation in every layer, on Fashion-MNIST or an ImageFolder.",
        epilog=_TRAIN_EPILOG, formatter_class=fmt)
    t.add_argument("--act", default="relu", help="activation name (see 'revact list')")
    t.add_argument("--seed", type=int, default=0, help="seed: initial weights and data order")
    _recipe_args(t, epochs=10)
    t.add_argument("--out", default="runs/train", help="output folder (default %(default)s)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue from OUT/checkpoint.pt (or CKPT); the recipe must match")
    t.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    t.set_defaults(func=_train)

    c = subparsers.add_parser(
        "compare", help="fair, repeatable activation shoot-out with confidence intervals",
        description="Train the same network with each activation and several seeds, and rank "
                    "them with paired-by-seed 95%% confidence intervals against the first.",
        epilog=_COMPARE_EPILOG, formatter_class=fmt)
    c.add_argument("--acts", default=DEFAULT_ACTS,
                   help="comma-separated activations; the first is the baseline "
                        "(default %(default)s)")
    c.add_argument("--seeds", default="3",
                   help="number of seeds (0..N-1) or a comma list, e.g. 0,1,2 (default 3)")
    _recipe_args(c, epochs=COMPARE_DEFAULTS["epochs"])
    c.add_argument("--full", action="store_true",
                   help="train on the full training split and validate on all 5,000 images")
    c.add_argument("--out", default="runs/compare", help="output folder (default %(default)s)")
    c.add_argument("--no-plots", dest="plots", action="store_false", help="skip PNG plots")
    c.add_argument("--jobs", type=int, default=None,
                   help="runs at once, each its own process (default: CPU cores // --threads "
                        "on CPU, 1 on a GPU)")
    c.set_defaults(func=_compare, threads=None)


def _check_names(acts: list[str], model: str) -> str | None:
    """An error message for an unknown activation or model, or None."""
    from revact.activations.create_act import act_spec
    from revact.models import list_models

    for a in acts:
        try:
            act_spec(a)
        except ValueError as e:
            return str(e)
    if model.lower().replace("-", "_") not in list_models():
        return f"unknown model {model!r}. Known: {', '.join(list_models())}"
    return None


def _config(args: argparse.Namespace, **over):
    from revact.train.config import TrainConfig

    keys = ("model", "epochs", "opt", "lr", "momentum", "weight_decay", "warmup_epochs",
            "label_smoothing", "augment", "amp", "data", "data_dir", "download", "val_size",
            "split_seed", "train_subset", "val_subset", "test_subset", "device", "threads")
    kw = {k: getattr(args, k) for k in keys}
    kw["model"] = kw["model"].lower().replace("-", "_")
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    if args.quick:  # fills in what the command line left open
        for k, v in QUICK.items():
            if getattr(args, k) is None:
                kw[k] = v
    if kw["epochs"] is None:
        kw["epochs"] = args.default_epochs
    kw.update(over)
    return TrainConfig(**kw)


def _train(args: argparse.Namespace) -> int:
    from revact.data import DataNotFoundError
    from revact.train.checkpoint import CheckpointError
    from revact.train.engine import train

    err = _check_names([args.act], args.model)
    if err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        cfg = _config(args, act=args.act, seed=args.seed, out=args.out, progress=args.progress)
        train(cfg, resume=args.resume)
    except (DataNotFoundError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _parse_seeds(text: str) -> list[int]:
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    return list(range(int(text)))


def _compare(args: argparse.Namespace) -> int:
    from revact.data import DataNotFoundError, load_data
    from revact.train.compare import default_jobs, plan_runs, run_compare
    from revact.train.report import format_leaderboard

    acts = [a.strip().lower() for a in args.acts.split(",") if a.strip()]
    over = {"threads": args.threads or 1}
    jobs = default_jobs(over["threads"], args.device) if args.jobs is None else args.jobs
    try:  # before loading data: the same checks run_compare makes
        seeds = _parse_seeds(args.seeds)
        plan_runs(acts, seeds, jobs)
    except ValueError as e:
        print(f"error: {e} (--acts {args.acts!r}, --seeds {args.seeds!r}, --jobs {jobs})",
              file=sys.stderr)
        return 2
    err = _check_names(acts, args.model)
    if err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quick:
        if args.full:
            over.update(train_subset=args.train_subset, val_subset=args.val_subset)
        else:
            for key, value in COMPARE_DEFAULTS.items():
                given = getattr(args, key)
                if key == "warmup_epochs":
                    given = given or None  # the option's own default is 0
                if key != "epochs":
                    over[key] = value if given is None else given
    try:
        cfg = _config(args, **over)
        # Fail here, once, with the how-to-get-it message rather than in every run.
        data = load_data(cfg.data, cfg.data_dir, val_size=cfg.val_size,
                         split_seed=cfg.split_seed, train_subset=cfg.train_subset,
                         test_subset=cfg.test_subset, download=cfg.download)
    except (DataNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # The loader's split is 5,000 validation images; runs score a fixed subset of it.
    val_note = f" (runs validate on {cfg.val_subset})" if cfg.val_subset else ""
    print(f"compare: {len(acts)} activations x {len(seeds)} seeds on {cfg.model}, "
          f"{cfg.epochs} epoch(s), {jobs} run(s) at once; {data.describe()}{val_note}",
          flush=True)
    del data
    command = "revact " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    try:
        results = run_compare(acts, seeds, cfg, args.out, plots=args.plots, command=command,
                              jobs=jobs)
    except RuntimeError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    print()
    print(format_leaderboard(results))
    plots = " and PNG plots" if args.plots else ""
    print(f"\nwrote {args.out}/results.md, results.json, results.csv{plots}")
    return 0
