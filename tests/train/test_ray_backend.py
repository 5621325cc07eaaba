"""``revact compare --backend ray`` on a real two-node Ray cluster on this machine.

The cluster listens on 127.0.0.1 only and is started and shut down here, by its own handle
(never ``ray stop``). Both nodes have one CPU; every run asks for one (``--threads 1``), so
two runs go to two nodes. The head node has the data under ``$REVACT_TEST_IDX``, node B
has that variable pointing nowhere (a node without the data set). The tests share one
recipe, and one local-backend comparison is the reference every Ray result must equal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

# A driver resolves a loopback cluster address to the machine's own IP (where this cluster
# does not listen) unless Ray is told that it runs on one machine. Set before Ray is
# imported: it is read once, at import.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(LOOPBACK)
ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

# The recipe: runs long enough (6 short epochs) that a node can be killed mid-run.
RECIPE = ["--quick", "--model", "mbv2_tiny", "--train-subset", "256", "--val-subset", "128",
          "--test-subset", "200", "--batch-size", "32", "--epochs", "6", "--threads", "1",
          "--no-plots", "--no-download"]
TIMING = {"seconds", "img_per_s"}
# Node death noticed within ~3 s instead of Ray's default ~30 s.
FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-nodes")
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "_system_config": FAST_FAILURE,
        "env_vars": {"REVACT_TEST_IDX": str(tiny_data), "REVACT_RAY_NODE_DIR": str(root / "A")}})
    try:
        node_b = c.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars={
            "REVACT_TEST_IDX": str(root / "no-data-here"), "REVACT_RAY_NODE_DIR": str(root / "B")})
        c.wait_for_nodes()
        c.node_b = node_b
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def env(tiny_data):
    return {**os.environ, **LOOPBACK, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "REVACT_TEST_IDX": str(tiny_data)}


def _compare(revact_bin, out, acts, data, *extra):
    return [revact_bin, "compare", "--acts", acts, "--seeds", "1", *RECIPE, "--data-dir",
            str(data), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def reference(revact_bin, tiny_data, tmp_path_factory, env):
    """The local backend's results for relu and silu, seed 0: what Ray must reproduce."""
    out = tmp_path_factory.mktemp("local")
    r = subprocess.run(_compare(revact_bin, out, "relu,silu", tiny_data, "--jobs", "2"),
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return _runs(out)


def _runs(out: Path) -> dict:
    res = json.loads((out / "results.json").read_text())
    return {(r["act"], r["seed"]): r for r in res["runs"]}


def _same_numbers(a: dict, b: dict) -> None:
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]
    strip = [{k: v for k, v in h.items() if k not in TIMING} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k not in TIMING} for h in b["history"]]


def _node_id(node) -> str:
    return node.node_id[:8]


def _training_pids(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"revact.train.worker" in cmd and text.encode() in cmd:
                pids.append(int(entry))
    return pids


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def test_ray_equals_local_without_shared_storage(cluster, reference, revact_bin, tiny_data,
                                                 tmp_path, env):
    """Both nodes, each run once; nothing shared: results come back as task results."""
    out = tmp_path / "ray"
    r = subprocess.run(_compare(revact_bin, out, "relu,silu", tiny_data, "--backend", "ray",
                                "--address", cluster.address),
                       env={**env, "REVACT_RAY_SHARED_OUT": "0"}, timeout=300,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "on the Ray cluster at" in r.stdout and "(2 node(s), 2 CPUs)" in r.stdout
    runs = _runs(out)
    assert set(runs) == set(reference)
    for key in runs:
        _same_numbers(runs[key], reference[key])
    # One run per node: each of the two 1-CPU nodes took one.
    ids = {_node_id(n) for n in cluster.list_all_nodes()}
    assert {r["node"].split("/")[1] for r in runs.values()} == ids
    res = json.loads((out / "results.json").read_text())
    assert res["environment"]["backend"] == "ray" and len(res["environment"]["nodes"]) == 2
    for run in runs.values():
        run_dir = out / run["dir"]
        # The driver wrote what came back; the checkpoint stayed on the node's disk.
        assert {"config.json", "metrics.json", "train.log", "node.txt"} <= {
            p.name for p in run_dir.iterdir()}
        assert not (run_dir / "checkpoint.pt").exists()
        node_dir = Path(json.loads((run_dir / "metrics.json").read_text())["config"]["out"])
        assert (node_dir / "checkpoint.pt").is_file() and node_dir.parts[-3:] == run_dir.parts[-3:]
        assert "test  loss" in (run_dir / "train.log").read_text()


def test_node_without_data_fails_its_run_only(cluster, revact_bin, tmp_path, env):
    out = tmp_path / "nodata"
    # Quoted: every node expands $REVACT_TEST_IDX itself; node B's points nowhere.
    r = subprocess.run([*_compare(revact_bin, out, "relu,silu", "$REVACT_TEST_IDX", "--backend",
                                  "ray", "--address", cluster.address), "--epochs", "1"],
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("  ") and " on " in ln]
    assert len(failed) == 1, r.stderr
    line = failed[0]
    assert f"/{_node_id(cluster.node_b)}: Fashion-MNIST not found" in line
    assert "no-data-here" in line and "apt-get install -y dataset-fashion-mnist" in line
    assert "1 of 2 runs failed" in r.stderr
    done = [p.parent.parent.name for p in out.glob("runs/*/seed0/metrics.json")]
    assert len(done) == 1  # the other run went on and finished


def test_interrupt_cancels_then_same_command_resumes(cluster, revact_bin, tiny_data, tmp_path,
                                                     env):
    out = tmp_path / "int"
    # 40 epochs (10-20 s per run): the interrupted run cannot finish while its
    # cancellation travels (about a second) after its first checkpoint, even on a loaded
    # machine (20 epochs once let it finish first there: the command exited 0).
    epochs = 40
    cmd = _compare(revact_bin, out, "relu,silu,gelu", tiny_data, "--backend", "ray",
                   "--address", cluster.address, "--epochs", str(epochs))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:  # until the first run is done: one reused on resume
            lines.append(line)
            if line.startswith("[1/3]"):
                break
        assert lines and lines[-1].startswith("[1/3]"), "".join(lines)
        # The third run (queued until now) starts and writes its first checkpoint.
        deadline = time.monotonic() + 120
        while not (out / "runs/gelu/seed0/checkpoint.pt").is_file():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, rest
    assert "interrupted: the running runs were stopped" in rest
    deadline = time.monotonic() + 15
    while _training_pids(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _training_pids(str(out))  # the cancelled tasks stopped their training
    assert not (out / "runs/gelu/seed0/metrics.json").exists()

    again = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert again.stdout.count("(reused)") >= 1
    # The stopped run went on from its last epoch.
    assert "resumed from" in (out / "runs/gelu/seed0/train.log").read_text()
    runs = _runs(out)
    assert sorted(runs) == [("gelu", 0), ("relu", 0), ("silu", 0)]
    assert all(len(r["history"]) == epochs for r in runs.values())


def test_versions_are_checked_on_each_node(cluster, tmp_path):
    from revact.train.backends import BackendError, Job, RayBackend, versions

    want = {**versions(), "revact": "0.0.1"}
    backend = RayBackend(cluster.address, driver_versions=want)
    backend.start()
    try:
        job = Job(key=("x", 0), label="x", folder=tmp_path / "job",
                  argv=["-c", "open('ran', 'w').close()"])
        (result,) = list(backend.run([job], root=tmp_path))
        # A run no node has the CPUs for is refused rather than queued for ever.
        job.threads = 2
        with pytest.raises(BackendError, match="no node of the Ray cluster has 2 CPUs"):
            list(backend.run([job], root=tmp_path))
    finally:
        backend.close()
    assert result.rc != 0 and "\n" not in result.error
    assert result.error.startswith("versions differ: this node has revact ")
    assert "the driver revact 0.0.1" in result.error and "pip install revact==0.0.1" in result.error
    assert not (tmp_path / "job" / "ran").exists()


def test_runs_get_the_priority_a_local_run_has(cluster, tmp_path):
    """Ray starts task workers at niceness 15; a run there must not be starved (and report
    a starved img/s) beside other work on its node."""
    from revact.train.backends import Job, RayBackend

    backend = RayBackend(cluster.address)
    backend.start()
    try:
        job = Job(key=("nice", 0), label="nice", folder=tmp_path / "job",
                  argv=["-c", "import os; open('nice.txt', 'w').write(str(os.nice(0)))"])
        (result,) = list(backend.run([job], root=tmp_path))
    finally:
        backend.close()
    assert result.rc == 0, result.error
    assert (tmp_path / "job" / "nice.txt").read_text() == str(os.nice(0))


def test_no_more_runs_at_once_than_cpus(cluster, tmp_path):
    """Two 1-CPU nodes, four 1-CPU jobs: never more than two run at once. (A task that
    blocks in ray.get lends its CPU to the next one; the tasks must not.)"""
    from revact.train.backends import Job, RayBackend

    stamp = ("import time; t = time.time(); time.sleep(1.5); "
             "open('span.txt', 'w').write(f'{t} {time.time()}')")
    jobs = [Job(key=("span", i), label=f"span {i}", folder=tmp_path / f"job{i}",
                argv=["-c", stamp]) for i in range(4)]
    backend = RayBackend(cluster.address)
    backend.start()
    try:
        results = list(backend.run(jobs, root=tmp_path))
    finally:
        backend.close()
    assert [r.rc for r in results] == [0] * 4, [r.error for r in results]
    spans = [tuple(map(float, (tmp_path / f"job{i}" / "span.txt").read_text().split()))
             for i in range(4)]
    busiest = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert busiest <= 2, spans


def test_killed_node_run_is_retried_elsewhere(cluster, reference, revact_bin, tiny_data,
                                              tmp_path, env):
    """Node B dies mid-run: its run is retried on the head, resumes from the checkpoint in
    the shared output folder, and every run is in the results once, as a local run has it.
    Runs last: it removes node B."""
    out = tmp_path / "fault"
    proc = subprocess.Popen(_compare(revact_bin, out, "relu,silu", tiny_data, "--backend", "ray",
                                     "--address", cluster.address),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        raylet_b = cluster.node_b.all_processes["raylet"][0].process.pid
        deadline = time.monotonic() + 120
        victim = None
        while victim is None or not (victim / "checkpoint.pt").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            for pid in _training_pids(str(out)):
                if _descends_from(pid, raylet_b):
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    victim = Path(cmd[cmd.index(b"--out") + 1].decode())
            time.sleep(0.05)
        cluster.remove_node(cluster.node_b, allow_graceful=False)  # SIGKILL its Ray processes
        print(f"killed node B while {victim.parent.name} ran there")
        output = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output)
    assert proc.returncode == 0, output
    log = (victim / "train.log").read_text()
    print(log)
    assert "retried on" in output
    assert "resumed from" in log
    runs = _runs(out)
    res = json.loads((out / "results.json").read_text())
    assert [(r["act"], r["seed"]) for r in res["runs"]] == [("relu", 0), ("silu", 0)]
    for key in reference:
        _same_numbers(runs[key], reference[key])
    head = _node_id(cluster.head_node)
    assert runs[victim.parent.name, 0]["node"].endswith(head)
