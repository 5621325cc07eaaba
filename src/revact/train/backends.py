"""Where the runs of a comparison (or a benchmark) execute: this machine, or a Ray cluster.

A :class:`Job` is one training process, ``python ARGV...``, working in one folder: it finds
its input files there, appends its output to a log there and leaves result files there.
A backend runs jobs and yields a :class:`JobResult` for each as it ends:

- :class:`LocalBackend` (``--backend local``): up to ``jobs`` processes at once on this
  machine, in the job's own folder. A failure stops the others (the caller raises).
- :class:`RayBackend` (``--backend ray``): one Ray task per job, asking for ``threads`` CPUs
  (and one GPU for a CUDA run); the task runs the same command on whichever node Ray picks
  and sends the job's result files and log back, so no shared filesystem is needed: the
  driver writes them into the job's folder. Where the driver's output folder *is* shared
  (the task sees a marker file the driver wrote there), the task works in that folder
  itself, checkpoints included, so a task Ray retries after its node died resumes from the
  last epoch; otherwise the checkpoint stays on the node's disk (``$REVACT_RAY_NODE_DIR``,
  default ``<tmp>/revact-ray``). A failed job does not stop the others. Every task first
  checks that its node has the driver's revact and torch versions.

Ray is imported only by :class:`RayBackend`: ``pip install 'revact[cluster]'`` installs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "JobResult", "Backend", "LocalBackend", "RayBackend", "BackendError",
           "make_backend", "versions", "RAY_INSTALL_HINT", "MAX_RETRIES"]

RAY_INSTALL_HINT = "pip install 'revact[cluster]'"
#: Times Ray re-runs a task whose worker or node died (not one that failed by itself).
MAX_RETRIES = 3
#: Driver side: ``0`` keeps every run's checkpoint on its node even when --out is shared.
SHARED_OUT_ENV = "REVACT_RAY_SHARED_OUT"
#: Node side: where runs keep their files when the driver's folder is not visible there.
NODE_DIR_ENV = "REVACT_RAY_NODE_DIR"
MARKER = ".revact-ray-driver"
# A log longer than this comes back from a node as its last this-many characters.
_LOG_LIMIT = 4 << 20
# Ray starts task workers at niceness 15 (so that its own daemons stay responsive); a run
# started there would then get a sliver of a CPU beside any other work on the node and
# report that as its img/s. Runs get the priority a local run has, as Ray's job drivers do.
_RUNTIME_ENV = {"env_vars": {"RAY_worker_niceness": "0"}}


class BackendError(RuntimeError):
    """The backend cannot run anything (Ray missing, no cluster); the message is one line."""


@dataclass
class Job:
    """One training process.

    ``argv`` follows the Python interpreter; ``{dir}`` in it stands for the folder the job
    runs in (``folder`` itself locally, maybe another one on a Ray node). ``files`` are the
    job's inputs: the caller has written them into ``folder``; a node that cannot see
    ``folder`` gets them written into its own. ``collect`` names the result files a node
    sends back. With ``resume = (FILE, FLAG)``, FLAG is added when FILE exists where the job
    runs (a checkpoint left by an earlier attempt).
    """

    key: tuple
    label: str
    folder: Path
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)
    collect: tuple[str, ...] = ()
    log: str = "train.log"
    resume: tuple[str, str] | None = None
    threads: int = 1
    gpus: int = 0


@dataclass
class JobResult:
    """How a job ended: ``rc`` 0 is success; ``error`` is one line when it is not."""

    job: Job
    rc: int
    node: str
    seconds: float
    error: str | None = None
    log_tail: str = ""
    where: str = ""  # the folder it ran in, on its node


def versions() -> dict[str, str]:
    """The revact and torch versions of this Python environment (without importing torch)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("revact", "torch"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _version_error(driver: dict[str, str], here: dict[str, str]) -> str | None:
    if driver == here:
        return None
    show = ", ".join
    return (f"versions differ: this node has {show(f'{k} {v}' for k, v in here.items())}, the "
            f"driver {show(f'{k} {v}' for k, v in driver.items())}; install the driver's "
            f"versions on every node (pip install "
            f"{' '.join(f'{k}=={v}' for k, v in driver.items())})")


def _expand_argv(job_argv: list[str], folder: Path, resume: tuple[str, str] | None) -> list[str]:
    argv = [a.replace("{dir}", str(folder)) for a in job_argv]
    if resume and (folder / resume[0]).is_file():
        argv.append(resume[1])
    return argv


def _env(threads: int) -> dict[str, str]:
    # Fix OpenMP's pool size before torch starts, not only torch.set_num_threads.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
    except OSError:
        return ""


def _error_line(log_text: str, rc: int) -> str:
    """The process's own one-line ``error: ...`` (its last), else its exit status."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("error: "):
            return line[len("error: "):].strip()
    return f"exit {rc}" if rc >= 0 else f"killed by signal {-rc}"


class _Processes:
    """The processes now running, so that an interrupt or a failure can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self.stopping = False

    def run(self, cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None,
            poll: bool = False) -> int:
        """Run ``cmd`` to its end. ``poll``: wait in short steps, so that an interrupt which
        only sets Python's flag (Ray's task cancellation) is seen within half a second."""
        with open(log, "a") as f:
            with self._lock:
                if self.stopping:
                    return -signal.SIGTERM
                proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                        cwd=cwd)
                self._live.add(proc)
            try:
                while poll:
                    try:
                        return proc.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        pass
                return proc.wait()
            except BaseException:  # interrupted while waiting (a cancelled Ray task)
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
            finally:
                with self._lock:
                    self._live.discard(proc)

    def stop(self) -> None:
        """Terminate every running process (training checkpoints per epoch: a re-run resumes)."""
        with self._lock:
            self.stopping = True
            for proc in self._live:
                proc.terminate()


class Backend:
    """Runs :class:`Job` s; see :class:`LocalBackend` and :class:`RayBackend`."""

    name = "?"
    #: True: a failed job leaves the others running (the caller collects failures).
    keep_going = False

    def start(self) -> None:
        """Get ready (connect to a cluster); raises :class:`BackendError`."""

    def close(self) -> None:
        """Release what :meth:`start` took."""

    def describe(self) -> str:
        raise NotImplementedError

    def parallel(self, threads: int, gpus: int = 0) -> int:
        """How many jobs of this size run at once."""
        raise NotImplementedError

    def echo(self, text: str) -> None:
        """Print a line for the user (above a progress bar where there is one)."""
        print(text, flush=True)

    def run(self, jobs: Iterable[Job], root: Path | None = None) -> Iterator[JobResult]:
        """Run ``jobs``, yielding each one's result as it ends. ``root``: the folder that
        holds every job's folder (the comparison's --out). Closing the iterator early (or an
        interrupt while it waits) stops what is still running."""
        raise NotImplementedError


class LocalBackend(Backend):
    """Up to ``jobs`` processes at once on this machine, each in its job's folder."""

    name = "local"

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def describe(self) -> str:
        return f"{self.jobs} run(s) at once"

    def parallel(self, threads: int, gpus: int = 0) -> int:
        return self.jobs

    def run(self, jobs: Iterable[Job], root: Path | None = None) -> Iterator[JobResult]:
        procs = _Processes()
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            futures = [pool.submit(self._one, job, procs) for job in jobs]
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            # Done, failed or interrupted: start nothing more and stop what is running.
            pool.shutdown(wait=False, cancel_futures=True)
            procs.stop()
            pool.shutdown(wait=True)

    @staticmethod
    def _one(job: Job, procs: _Processes) -> JobResult:
        job.folder.mkdir(parents=True, exist_ok=True)
        argv = _expand_argv(job.argv, job.folder, job.resume)
        log = job.folder / job.log
        t0 = time.perf_counter()
        rc = procs.run([sys.executable, *argv], log, _env(job.threads))
        seconds = time.perf_counter() - t0
        tail = _tail(log) if rc else ""
        return JobResult(job, rc, socket.gethostname(), seconds,
                         error=_error_line(tail, rc) if rc else None, log_tail=tail,
                         where=str(job.folder))


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError(f"--backend ray needs Ray: {RAY_INSTALL_HINT}") from None
    return ray


class _Tracker:
    """A Ray actor (no CPU) that tasks tell where they started: the progress display's
    "running" and "which node", and the note when a task is retried on another node."""

    def __init__(self) -> None:
        self.started: dict[tuple, list[str]] = {}

    def start(self, key: tuple, node: str) -> None:
        self.started.setdefault(tuple(key), []).append(node)

    def snapshot(self) -> dict[tuple, list[str]]:
        return {k: list(v) for k, v in self.started.items()}


class RayBackend(Backend):
    """One Ray task per job on the cluster at ``address`` (default ``$RAY_ADDRESS``, else
    ``auto``: the cluster this machine belongs to)."""

    name = "ray"
    keep_going = True

    def __init__(self, address: str | None = None, max_retries: int = MAX_RETRIES,
                 driver_versions: dict[str, str] | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or "auto"
        self.max_retries = max_retries
        # What every node must have; a test may pass other versions to see the refusal.
        self.versions = driver_versions or versions()
        self._ray = None
        self._bar = None

    def start(self) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            self._check_reachable()
            try:
                ray.init(address=self.address, log_to_driver=False,
                         logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise BackendError(
                    f"no Ray cluster at {self.address!r} ({first}); start one with "
                    "'ray start --head' (and 'ray start --address HEAD:6379' on the other "
                    "nodes), then pass --address HEAD:6379 or set $RAY_ADDRESS") from None
        self._ray = ray

    def _check_reachable(self, timeout: float = 10.0) -> None:
        """A HOST:PORT address that nothing answers on fails at once (``ray.init`` would
        retry for minutes)."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not port.isdigit() or "://" in host:
            return
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as e:
            raise BackendError(
                f"no Ray cluster answers at {self.address} ({e.strerror or e}); start one with "
                "'ray start --head --port 6379' there, or check --address / $RAY_ADDRESS"
            ) from None

    def close(self) -> None:
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray = None

    def _resources(self) -> dict[str, float]:
        return self._ray.cluster_resources()

    def describe(self) -> str:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        res = self._resources()
        gpus = f", {res['GPU']:g} GPUs" if res.get("GPU") else ""
        return (f"on the Ray cluster at {self.address} ({len(nodes)} node(s), "
                f"{res.get('CPU', 0):g} CPUs{gpus})")

    def parallel(self, threads: int, gpus: int = 0) -> int:
        res = self._resources()
        n = int(res.get("CPU", 0) // max(1, threads))
        if gpus:
            n = min(n, int(res.get("GPU", 0) // gpus))
        return max(1, n)

    def echo(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def run(self, jobs: Iterable[Job], root: Path | None = None) -> Iterator[JobResult]:
        ray = self._ray
        jobs = list(jobs)
        if not jobs:
            return
        self._check_fits(max(j.threads for j in jobs), max(j.gpus for j in jobs))
        token = None
        if root is not None and os.environ.get(SHARED_OUT_ENV, "1") != "0":
            token = uuid.uuid4().hex
            root.mkdir(parents=True, exist_ok=True)
            (root / MARKER).write_text(token + "\n")
        tracker = self._tracker()
        task = ray.remote(_run_on_node)
        pending: dict[Any, Job] = {}
        for job in jobs:
            opts = {"num_cpus": job.threads, "max_retries": self.max_retries,
                    "runtime_env": _RUNTIME_ENV}
            if job.gpus:
                opts["num_gpus"] = job.gpus
            spec = _spec(job, root, token)
            pending[task.options(**opts).remote(spec, self.versions, tracker)] = job
        try:
            yield from self._gather(pending, tracker, len(jobs))
        except BaseException:
            self._cancel(pending)
            raise
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if tracker is not None:
                with contextlib.suppress(Exception):
                    ray.kill(tracker)

    def _check_fits(self, threads: int, gpus: int) -> None:
        """Refuse jobs no node can take (Ray would queue them for ever)."""
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        if not any(r.get("CPU", 0) >= threads and r.get("GPU", 0) >= gpus for r in nodes):
            most = max((r.get("CPU", 0) for r in nodes), default=0)
            what = f"{threads} CPUs" + (f" and {gpus} GPU(s)" if gpus else "")
            hint = ("lower --threads" if most < threads
                    else "add GPU nodes, or run on CPU (--device cpu)")
            raise BackendError(f"no node of the Ray cluster has {what} for one run (the "
                               f"largest has {most:g} CPUs); {hint}")

    def _tracker(self):
        ray = self._ray
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # On the driver's own node (whose loss ends the comparison anyway), not on one
            # that may die with its runs: soft affinity does not keep a 0-CPU actor there.
            here = ray.get_runtime_context().get_node_id()
            tracker = ray.remote(_Tracker).options(
                num_cpus=0, max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
            ray.get(tracker.snapshot.remote(), timeout=60)  # up before the tasks tell it
            return tracker
        except Exception:  # progress without "running" is still progress
            return None

    def _gather(self, pending: dict, tracker, total: int) -> Iterator[JobResult]:
        from tqdm.auto import tqdm

        ray = self._ray
        self._bar = tqdm(total=total, desc="runs", unit="run", file=sys.stderr,
                         dynamic_ncols=True, disable=None)
        seen: dict[tuple, int] = {}  # attempts reported so far, per job
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                job = pending.pop(ref)
                result = self._result(ref, job)
                done += 1
                self._bar.update(1)
                yield result
            seen = self._show(tracker, pending, seen, done)

    def _show(self, tracker, pending: dict, seen: dict, done: int) -> dict:
        """Update the progress bar: done, running (and where), queued; say when a task was
        started again on another node (Ray retried it after its node or worker died)."""
        started: dict[tuple, list[str]] = {}
        if tracker is not None:
            with contextlib.suppress(Exception):
                started = self._ray.get(tracker.snapshot.remote(), timeout=5)
        waiting = {job.key: job for job in pending.values()}
        for key, nodes in started.items():
            for i in range(max(1, seen.get(key, 0)), len(nodes)):
                label = waiting[key].label if key in waiting else " seed ".join(map(str, key))
                self.echo(f"{label}: retried on {nodes[i]} (its task on {nodes[i - 1]} was "
                          "lost)")
        running = {k: nodes[-1] for k, nodes in started.items() if k in waiting}
        where = ", ".join(f"{waiting[k].label} @ {n}" for k, n in running.items())
        self._bar.set_postfix_str(f"done {done}, running {len(running)}"
                                  f"{f' ({where})' if where else ''}, queued "
                                  f"{len(waiting) - len(running)}", refresh=True)
        return {k: len(nodes) for k, nodes in started.items()}

    def _result(self, ref, job: Job) -> JobResult:
        ray = self._ray
        try:
            r = ray.get(ref)
        except Exception as e:  # the task was lost more times than it is retried, or a bug
            first = (str(e).strip().splitlines() or [""])[0]
            return JobResult(job, -1, "?", 0.0, error=f"{type(e).__name__}: {first}")
        if not r["shared"] and r["where"]:
            self._write_back(job, r)
        return JobResult(job, r["rc"], r["node"], r["seconds"], error=r.get("error"),
                         log_tail="".join(r["log"].splitlines(True)[-25:]), where=r["where"])

    @staticmethod
    def _write_back(job: Job, r: dict) -> None:
        """A job that ran on another disk: its log, and its result files when it succeeded,
        into its folder here."""
        job.folder.mkdir(parents=True, exist_ok=True)
        for name, text in (r["files"] if r["rc"] == 0 else {}).items():
            tmp = job.folder / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, job.folder / name)
        (job.folder / job.log).write_text(r["log"])

    def _cancel(self, pending: dict) -> None:
        """Cancel every task not yet gathered and give running ones a moment to stop their
        training process (each has a checkpoint of its last epoch to resume from)."""
        ray = self._ray
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        with contextlib.suppress(Exception):
            ray.wait(list(pending), num_returns=len(pending), timeout=15)


def _spec(job: Job, root: Path | None, token: str | None) -> dict[str, Any]:
    """What a task needs of a job, as plain data."""
    folder = job.folder.resolve()
    root = root.resolve() if root is not None else folder
    try:
        rel = str(folder.relative_to(root))
    except ValueError:
        rel = folder.name
    return {"key": list(job.key), "label": job.label, "folder": str(folder), "argv": job.argv,
            "files": job.files, "collect": list(job.collect), "log": job.log,
            "resume": list(job.resume) if job.resume else None, "threads": job.threads,
            "root": str(root), "rel": rel, "token": token,
            "driver": socket.gethostname()}


def _sees_driver_folder(spec: dict) -> bool:
    """Whether this node sees the driver's folder: the marker with this comparison's token."""
    if not spec["token"]:
        return False
    try:
        return (Path(spec["root"]) / MARKER).read_text().strip() == spec["token"]
    except OSError:
        return False


def _node_folder(spec: dict, node_id: str) -> Path:
    """Where a job keeps its files on a node that does not see the driver's folder: stable
    for one comparison folder and node, so a re-run on the same node resumes."""
    base = Path(os.environ.get(NODE_DIR_ENV) or Path(tempfile.gettempdir()) / "revact-ray")
    run = hashlib.sha256(f"{spec['driver']}:{spec['root']}".encode()).hexdigest()[:10]
    return base / f"{Path(spec['root']).name}-{run}-{node_id[:8]}" / spec["rel"]


# Started in front of a job's command on a node: the job dies with the Ray worker that
# started it (a killed node, a cancelled task) instead of training on unseen.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)
os.execv(sys.argv[2], sys.argv[2:])
"""


def _run_on_node(spec: dict, driver_versions: dict[str, str], tracker=None) -> dict[str, Any]:
    """A Ray task: run one job on this node and return its result files and log."""
    import ray

    if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) == signal.SIG_IGN):
        # Ray cancels a running task by interrupting its thread as SIGINT would, which does
        # nothing where SIGINT is ignored (a cluster started from a background shell job).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    node_id = ray.get_runtime_context().get_node_id()
    node = f"{socket.gethostname()}/{node_id[:8]}"
    if tracker is not None:
        # Not waited for: a task blocked in ray.get lends its CPUs to the next queued task,
        # which would then run beside it (more runs than CPUs). The tracker is up before
        # any task is sent, so the message goes out at once; only the progress display and
        # the "retried on" note depend on it.
        with contextlib.suppress(Exception):
            tracker.start.remote(tuple(spec["key"]), node)
    result = {"rc": 1, "node": node, "seconds": 0.0, "files": {}, "log": "", "shared": False,
              "where": "", "error": None}
    mismatch = _version_error(driver_versions, versions())
    if mismatch:
        return {**result, "error": mismatch}
    shared = _sees_driver_folder(spec)
    folder = Path(spec["folder"]) if shared else _node_folder(spec, node_id)
    folder.mkdir(parents=True, exist_ok=True)
    if not shared:
        for name, text in spec["files"].items():
            (folder / name).write_text(text)
    resume = tuple(spec["resume"]) if spec["resume"] else None
    argv = _expand_argv(spec["argv"], folder, resume)
    cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), sys.executable, *argv]
    log = folder / spec["log"]
    procs = _Processes()
    t0 = time.perf_counter()
    rc = procs.run(cmd, log, _env(spec["threads"]), cwd=folder, poll=True)  # a cancel stops it
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace") if log.is_file() else ""
    files = {}
    for name in spec["collect"]:
        path = folder / name
        if path.is_file():
            files[name] = path.read_text()
    return {**result, "rc": rc, "seconds": seconds, "files": files, "shared": shared,
            "where": str(folder), "log": text[-_LOG_LIMIT:],
            "error": _error_line(text, rc) if rc else None}


def make_backend(name: str, jobs: int = 1, address: str | None = None) -> Backend:
    """``local`` (``jobs`` at once) or ``ray`` (the cluster at ``address``); not started."""
    if name == "local":
        return LocalBackend(jobs)
    if name == "ray":
        _import_ray()
        return RayBackend(address)
    raise ValueError(f"unknown backend {name!r}; choose local or ray")
