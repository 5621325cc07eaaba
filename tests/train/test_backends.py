"""The backend choice of ``revact compare``, without a cluster: refusals and messages.

The Ray backend itself runs against a real cluster in test_ray_backend.py.
"""

import sys

import pytest

from revact.cli import main
from revact.data import DataNotFoundError, load_data
from revact.data.datasets import HOW_TO_GET
from revact.train.backends import _error_line, _version_error


def _run(capsys, *argv) -> tuple[int, str]:
    rc = main(["compare", "--quick", "--acts", "relu", *argv])
    return rc, capsys.readouterr().err


def test_ray_backend_without_ray_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    rc, err = _run(capsys, "--backend", "ray", "--address", "127.0.0.1:6379")
    assert rc == 2
    assert err == "error: --backend ray needs Ray: pip install 'revact[cluster]'\n"


def test_options_that_belong_to_the_other_backend(capsys):
    rc, err = _run(capsys, "--backend", "ray", "--jobs", "2")
    assert rc == 2 and "--jobs is for --backend local" in err
    rc, err = _run(capsys, "--address", "127.0.0.1:6379")
    assert rc == 2 and "--address is for --backend ray" in err
    rc, err = _run(capsys, "--backend", "ray", "--device", "cuda:1")
    assert rc == 2 and "give --device cuda" in err


def test_unreachable_cluster_fails_at_once(capsys):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = _run(capsys, "--backend", "ray", "--address", f"127.0.0.1:{port}")
    assert rc == 2 and err.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (")
    assert err.count("\n") == 1


def test_missing_data_message_in_one_line(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_data("fashion-mnist", tmp_path / "idx", download=False)
    line = info.value.summary
    assert "\n" not in line and HOW_TO_GET in str(info.value)
    assert line.startswith(f"Fashion-MNIST not found (looked in {tmp_path / 'idx'}); install it: ")
    assert "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" in line
    # The node reports the process's last `error: ` line, else how it ended.
    assert _error_line(f"noise\nerror: {line}\n", 4) == line
    assert _error_line("Traceback ...\n", 1) == "exit 1"
    assert _error_line("", -9) == "killed by signal 9"


def test_version_mismatch_names_both_sides():
    same = {"revact": "0.1.0", "torch": "2.14.1"}
    assert _version_error(same, dict(same)) is None
    msg = _version_error(same, {"revact": "0.1.0", "torch": "2.13.0"})
    assert msg == ("versions differ: this node has revact 0.1.0, torch 2.13.0, the driver "
                   "revact 0.1.0, torch 2.14.1; install the driver's versions on every node "
                   "(pip install revact==0.1.0 torch==2.14.1)")


def test_help_shows_the_backend_options(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "--backend {local,ray}" in out and "--address ADDR" in out
    assert "revact[cluster]" in out


def test_yolo_benchmark_plans_through_the_backend(tmp_path):
    """benchmarks/yolo_fmnist.py takes the same backends: --plan shows the runs it would
    send (here to a Ray cluster, not contacted) and creates nothing."""
    import importlib.util
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "yolo_fmnist.py"
    out = tmp_path / "y"

    def run(*argv):
        return subprocess.run([sys.executable, str(script), *argv], capture_output=True,
                              text=True, timeout=120)

    help_text = run("--help").stdout
    assert "--backend {local,ray}" in help_text and "--address ADDR" in help_text
    r = run("--backend", "ray", "--address", "127.0.0.1:1", "--plan", "--seeds", "0,1",
            "--models", "yolov8n (SiLU),RevCol-nano + YOLOv8n head", "--out", str(out))
    if importlib.util.find_spec("ray") is None:
        assert r.returncode == 1 and "pip install 'revact[cluster]'" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "backend: ray (Ray cluster at 127.0.0.1:1)"
    assert [ln.split(":")[0] for ln in lines[1:]] == [
        "yolov8n (SiLU) seed 0", "RevCol-nano + YOLOv8n head seed 0",
        "yolov8n (SiLU) seed 1", "RevCol-nano + YOLOv8n head seed 1"]
    assert f"'{out}/jobs/yolov8n-s1/yolo_fmnist.py' '--one' 'yolov8n.yaml'" in lines[3]
    assert "'--threads' '2' '--out'" in lines[3]
    assert not out.exists()
    r = run("--address", "127.0.0.1:1", "--plan")
    assert r.returncode == 2 and "--address is for --backend ray" in r.stderr
