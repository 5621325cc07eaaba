"""YOLO detectors with revact's activations and a RevCol backbone, on generated detection data.

Writes a Fashion-MNIST detection set (``revact detdata``'s generator), then trains every
model with the same recipe and seeds, each run in its own process (for a clean peak-memory
reading), through ``revact.integrations.ultralytics.DetectionTrainer``. Reports mAP50-95,
mAP50, parameters, GFLOPs with activation maths counted (revact's counter) beside
Ultralytics' own count (thop, which counts activations as free), training images/s and peak
resident memory, as mean ± std over seeds.

    python benchmarks/yolo_fmnist.py                    # writes runs/yolo_fmnist
    python benchmarks/yolo_fmnist.py --out benchmarks/results/yolo_fmnist  # the recorded run
    python benchmarks/yolo_fmnist.py --epochs 2 --train 128 --val 64 --seeds 0 --out /tmp/y  # smoke
    python benchmarks/yolo_fmnist.py --backend ray --address HEAD:6379   # runs on a Ray cluster

The (model, seed) runs go through revact's backends (``revact.train.backends``, as
``revact compare`` does): ``--backend local`` runs them one after another here, ``--backend
ray`` as one Ray task each (``--threads`` CPUs). A node that does not see ``--out`` gets
this script and writes the detection set itself (same arguments, same bytes; it needs
Fashion-MNIST), and sends its run's result back. ``--plan`` prints the runs and exits.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

# name -> model YAML (shipped with revact, or Ultralytics' own), as given to revact yolo.
MODELS = {
    "yolov8n (SiLU)": "yolov8n.yaml",
    "yolov8n + DY-ReLU-B": "yolov8n-dyrelu_b.yaml",
    "yolov8n + ACON-C": "yolov8n-acon_c.yaml",
    "RevCol-nano + YOLOv8n head": "revcol_nano",
}
# From scratch, on ~10 CPU minutes per run: Ultralytics' defaults (optimizer=auto picks AdamW
# at lr 7e-4 for 10 classes, 3 warm-up epochs, mosaic) leave mAP at 0 after 8 epochs here;
# a higher learning rate, one warm-up epoch and no mosaic learn within the budget.
RECIPE = {"optimizer": "AdamW", "lr0": 0.002, "warmup_epochs": 1, "mosaic": 0.0}
# RevCol-T (30M parameters) takes hours per run on a 2-core CPU; this benchmark's RevCol
# detector has RevCol's structure at a size the other three can be compared with.
REVCOL_NANO = "{channels: [32, 64, 128, 256], layers: [1, 1, 2, 1], columns: 4}"


def revcol_nano_yaml(folder: Path) -> Path:
    from revact.integrations.ultralytics import model_cfg

    text = Path(model_cfg("yolov8-revcol_t.yaml")).read_text()
    text = (text.replace("[tiny]", f"[{REVCOL_NANO}]").replace("[128, 1]", "[64, 1]")
            .replace("[256, 2]", "[128, 2]").replace("[512, 3]", "[256, 3]"))
    path = folder / "yolov8n-revcol_nano.yaml"
    path.write_text("# RevCol-nano: channels 32-256, blocks 1/1/2/1, 4 columns\n" + text)
    return path


def train_one(model: str, data: str, seed: int, args: argparse.Namespace) -> dict:
    """One training run in this process; returns its metrics and costs."""
    import torch
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    from revact.integrations.flops import count_macs
    from revact.integrations.ultralytics import DetectionTrainer, model_cfg

    torch.set_num_threads(args.threads)
    yolo = YOLO(model_cfg(model))
    train_time = [0.0]

    def start(trainer):
        trainer._epoch_t0 = time.perf_counter()

    def stop(trainer):
        train_time[0] += time.perf_counter() - trainer._epoch_t0

    yolo.add_callback("on_train_epoch_start", start)
    yolo.add_callback("on_train_epoch_end", stop)
    yolo.train(data=data, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, seed=seed,
               deterministic=True, workers=0, plots=False, device="cpu", amp=False,
               project=str(args.out / "runs"), name=f"{Path(model).stem}-s{seed}",
               exist_ok=True, verbose=False, trainer=DetectionTrainer, **RECIPE)
    net = yolo.trainer.model
    macs = count_macs(net, (3, args.imgsz, args.imgsz))
    metrics = yolo.trainer.metrics
    return {
        "map50_95": metrics["metrics/mAP50-95(B)"], "map50": metrics["metrics/mAP50(B)"],
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "gflops": 2 * macs["macs"] / 1e9, "act_gflops": 2 * macs["act_macs"] / 1e9,
        "thop_gflops": get_flops(net, args.imgsz),
        "train_img_s": args.epochs * args.train / train_time[0],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def paired_step_ratios(models: dict[str, str], imgsz: int, batch: int, threads: int,
                       repeats: int = 7) -> dict[str, float]:
    """Training-step time of each model over the first one's, paired and interleaved.

    The trainings' images/s are read at different times of a shared machine; here every
    repeat times all models back to back on the same batch (forward, a loss over every
    output, backward, SGD step), and each figure is the median of the per-repeat ratios.
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from revact.integrations.ultralytics import model_cfg

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nets = {n: DetectionModel(model_cfg(m), nc=10, verbose=False).train()
            for n, m in models.items()}
    opts = {n: torch.optim.SGD(net.parameters(), lr=1e-4) for n, net in nets.items()}
    x = torch.rand(batch, 3, imgsz, imgsz)

    def step(name: str) -> float:
        start = time.perf_counter()
        out = nets[name](x)
        loss = sum(t.float().square().mean() for t in out["feats"])  # every map, every head
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()
        return time.perf_counter() - start

    for name in nets:  # warm-up: first-touch allocations, lazy inits
        step(name)
    ratios: dict[str, list[float]] = {n: [] for n in nets}
    base = next(iter(nets))
    for _ in range(repeats):
        times = {n: step(n) for n in nets}
        for n in nets:
            ratios[n].append(times[n] / times[base])
    return {n: statistics.median(r) for n, r in ratios.items()}


def _summary(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    mean = statistics.fmean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def report(results: dict[str, list[dict]], args: argparse.Namespace, command: str) -> str:
    cols = [("mAP50-95", "map50_95"), ("mAP50", "map50"), ("params (M)", "params_m"),
            ("GFLOPs, activations counted", "gflops"), ("of which activations", "act_gflops"),
            ("GFLOPs (Ultralytics/thop)", "thop_gflops"), ("train img/s", "train_img_s"),
            ("peak RSS (MiB)", "peak_rss_mib")]
    lines = [f"`{command}`", "",
             f"{args.train} training / {args.val} validation images at {args.imgsz} px, "
             f"{args.epochs} epochs, batch {args.batch}, {RECIPE}, seeds {args.seeds}, "
             f"{args.threads} threads, CPU; mean ± std over seeds; GFLOPs per image at "
             f"{args.imgsz} px.", "",
             "| model | " + " | ".join(c for c, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, runs in results.items():
        lines.append(f"| {name} | " + " | ".join(_summary(runs, k) for _, k in cols) + " |")
    return "\n".join(lines) + "\n"


#: Where results go without --out: a scratch folder, never the committed results.
DEFAULT_OUT = Path("runs/yolo_fmnist")
#: The options a run passes on to its own process (--one).
RUN_OPTIONS = ("epochs", "train", "val", "imgsz", "batch", "threads")


def _model_file(model: str, folder: Path) -> str:
    """A MODELS value as a model YAML: the RevCol-nano one is written into ``folder``."""
    return str(revcol_nano_yaml(folder)) if model == "revcol_nano" else model


def _data_here(data: str, args: argparse.Namespace) -> str:
    """The driver's detection set when this process sees it, else the same set written here
    (a Ray node without the driver's folder)."""
    if Path(data).is_file():
        return data
    from revact.data.detection import write_detection_dataset

    return str(write_detection_dataset(args.out / "data", n_train=args.train, n_val=args.val,
                                       imgsz=args.imgsz, overwrite=True))


def _jobs(models: dict[str, str], seeds: list[int], data: str, args: argparse.Namespace):
    """One backend job per (model, seed), seed-major: this script's ``--one`` in the job's
    folder (a copy of the script travels with it), writing ``result.json``."""
    from revact.train.backends import Job

    source = Path(__file__).read_text()
    options = [x for k in RUN_OPTIONS for x in (f"--{k}", str(getattr(args, k)))]
    return [Job(key=(name, seed), label=f"{name} seed {seed}",
                folder=args.out / "jobs" / f"{Path(model).stem}-s{seed}",
                argv=["{dir}/yolo_fmnist.py", "--one", model, data, str(seed), *options,
                      "--out", "{dir}"],
                files={"yolo_fmnist.py": source}, collect=("result.json",), log="train.log",
                threads=args.threads)
            for seed in seeds for name, model in models.items()]


def main() -> None:
    keys = "\n".join(f"  {name!r:32} {model}" for name, model in MODELS.items())
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"--models keys (comma-separated, quoted in a shell, e.g. --models "
               f"'yolov8n (SiLU),yolov8n + ACON-C'):\n{keys}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"output folder (default {DEFAULT_OUT}; the recorded results were "
                        "written with --out benchmarks/results/yolo_fmnist)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--train", type=int, default=600)
    p.add_argument("--val", type=int, default=150)
    p.add_argument("--imgsz", type=int, default=96)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated names from the list below (default: all of them)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="where the runs go: 'local' here, one after another (default), or "
                        "one Ray task each on a Ray cluster (pip install 'revact[cluster]')")
    p.add_argument("--address", metavar="ADDR",
                   help="the Ray cluster's head, HOST:6379 (default $RAY_ADDRESS, else auto)")
    p.add_argument("--plan", action="store_true",
                   help="print the runs, their commands and the backend; run nothing")
    p.add_argument("--one", nargs=3, metavar=("MODEL", "DATA", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--speed-only", action="store_true",
                   help="only the paired training-step ratios (added to results.md if present)")
    args = p.parse_args()
    unknown = [n for n in args.models.split(",") if n not in MODELS]
    if unknown:
        p.error(f"--models: unknown {', '.join(map(repr, unknown))}; choose from "
                f"{', '.join(map(repr, MODELS))}")
    if args.address and args.backend != "ray":
        p.error("--address is for --backend ray")
    args.out = args.out.resolve()
    if args.one:
        model, data, seed = args.one
        args.out.mkdir(parents=True, exist_ok=True)
        result = train_one(_model_file(model, args.out), _data_here(data, args), int(seed), args)
        (args.out / "result.json").write_text(json.dumps(result))
        print(json.dumps(result))
        return

    from revact.train.backends import BackendError, make_backend

    models = {n: MODELS[n] for n in args.models.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        backend = make_backend(args.backend, 1, args.address)
    except BackendError as e:
        sys.exit(f"error: {e}")
    if args.plan:
        print_plan(backend, _jobs(models, seeds, str(args.out / "data" / "data.yaml"), args))
        return

    from revact.data.detection import write_detection_dataset
    from revact.integrations.ultralytics.commands import prepare_offline

    prepare_offline()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.speed_only:
        write_speed({n: _model_file(m, args.out) for n, m in models.items()}, args)
        return
    data = write_detection_dataset(args.out / "data", n_train=args.train, n_val=args.val,
                                   imgsz=args.imgsz, overwrite=True, progress=True)
    command = "python benchmarks/yolo_fmnist.py " + " ".join(sys.argv[1:])
    try:
        backend.start()
    except BackendError as e:
        sys.exit(f"error: {e}")
    try:
        results = run_all(backend, _jobs(models, seeds, str(data), args), models, args)
    finally:
        backend.close()
    text = report(results, args, command)
    (args.out / "results.md").write_text(text)
    print(text)
    write_speed({n: _model_file(m, args.out) for n, m in models.items()}, args)


def print_plan(backend, jobs) -> None:
    print(f"backend: {backend.name}"
          + (f" (Ray cluster at {backend.address})" if backend.name == "ray" else ""))
    for job in jobs:
        argv = [a.replace("{dir}", str(job.folder)) for a in job.argv]
        print(f"{job.label}: {Path(sys.executable).name} {' '.join(map(repr, argv))}")


def run_all(backend, jobs, models: dict[str, str], args: argparse.Namespace
            ) -> dict[str, list[dict]]:
    """Every job through ``backend``; results per model in seed order (results.json is
    rewritten as runs end). Locally a failed run ends the benchmark; on Ray the others go
    on and the failures are listed at the end."""
    from contextlib import closing

    for job in jobs:
        job.folder.mkdir(parents=True, exist_ok=True)
        for name, text in job.files.items():
            (job.folder / name).write_text(text)
    got: dict[tuple, dict] = {}
    failed = []
    with closing(backend.run(jobs, root=args.out)) as finished:
        for r in finished:
            name, seed = r.job.key
            if r.rc:
                msg = f"{name} seed {seed} failed on {r.node}: {r.error}\n{r.log_tail}"
                if not backend.keep_going:
                    sys.exit(msg)
                failed.append(msg)
                continue
            got[r.job.key] = json.loads((r.job.folder / "result.json").read_text())
            backend.echo(f"{name} seed {seed}: {got[r.job.key]} ({r.seconds:.0f} s"
                         + (f" on {r.node})" if backend.name != "local" else ")"))
            done = {n: [got[j.key] for j in jobs if j.key in got and j.key[0] == n]
                    for n in models}
            (args.out / "results.json").write_text(json.dumps(done, indent=1))
    if failed:
        sys.exit(f"{len(failed)} run(s) failed:\n" + "\n".join(failed))
    return {n: [got[j.key] for j in jobs if j.key[0] == n] for n in models}


def write_speed(models: dict[str, str], args: argparse.Namespace) -> None:
    ratios = paired_step_ratios(models, args.imgsz, args.batch, args.threads)
    base = next(iter(models))
    lines = ["", f"Training step, paired and interleaved (`{' '.join(sys.argv)}`; batch "
             f"{args.batch} at {args.imgsz} px, {args.threads} threads, median of 7 per-repeat "
             f"ratios to {base}):", "", "| model | step time × " + base + " |", "|---|---:|"]
    lines += [f"| {n} | {r:.2f} |" for n, r in ratios.items()]
    text = "\n".join(lines) + "\n"
    with open(args.out / "results.md", "a") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
