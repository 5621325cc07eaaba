"""``revact.info()`` and ``revact info``: the environment on one screen, for bug reports."""

import json
import os
import subprocess
import sys
import textwrap

import revact
from revact.activations.functional import use_native_kernels
from revact.cli import main
from revact.sysinfo import INTEGRATIONS


def test_info_says_what_runs():
    info = revact.info()
    assert info["revact"] == revact.__version__
    assert set(info) == {"revact", "python", "platform", "torch", "cpu", "native", "paths",
                         "integrations"}
    assert set(info["cpu"]) >= {"avx2", "fma", "avx512f", "aten_capability"}
    native = info["native"]
    assert native["loaded"] == native["used"] == revact.native_kernels_available()
    if native["used"]:
        assert native["why_not"] is None and native["rebuild"] is None
        assert native["variant"] in ("avx512", "avx2") or native["variant"].startswith(
            "baseline (")
        assert native["variant"] in info["paths"]["eager"]
    else:
        assert native["why_not"] and "--no-build-isolation" in native["rebuild"]
    assert set(info["integrations"]) == set(INTEGRATIONS)
    assert all(v == "not installed" or v[0].isdigit() for v in info["integrations"].values())
    json.dumps(info)  # plain data


def test_info_names_use_native_kernels_false():
    if not revact.native_kernels_available():
        return
    with use_native_kernels(False):
        native = revact.info()["native"]
    assert native["loaded"] and not native["used"]
    assert native["why_not"] == "use_native_kernels(False) is in effect"


def test_info_imports_no_integration():
    """Versions come from installed metadata: nothing heavy is imported."""
    script = textwrap.dedent(f"""
        import sys, revact
        before = set(sys.modules)
        revact.info()
        heavy = {sorted(INTEGRATIONS)!r}
        print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=True)
    assert done.stdout.strip() == "[]"


def test_cli_prints_one_screen(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"revact {revact.__version__}")
    assert len(out.splitlines()) <= 30 and "native CPU kernels" in out
    assert "torch.compile" in out and "ultralytics" in out
    assert ("used      yes" in out) == revact.native_kernels_available()


def test_cli_json_in_a_fresh_process_names_the_baseline_build():
    """``revact info --json`` is revact.info(); REVACT_CPU_BASELINE=1 shows as the build
    that runs."""
    env = {**os.environ, "REVACT_CPU_BASELINE": "1"}
    done = subprocess.run([sys.executable, "-m", "revact.cli", "info", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    info = json.loads(done.stdout)
    assert info["revact"] == revact.__version__
    if info["native"]["used"]:
        assert info["native"]["variant"] == "baseline (REVACT_CPU_BASELINE is set)"
