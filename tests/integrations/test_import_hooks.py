"""What ``import revact`` installs (a one-shot ``sys.meta_path`` finder per package it
registers with, and Ultralytics' module-registration hook once Ultralytics loads), and the
``REVACT_NO_IMPORT_HOOKS=1`` opt-out, each in a fresh interpreter."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("ultralytics")

_PROBE = textwrap.dedent("""
    import json, sys
    import torch.nn.modules.module as module_mod

    def finders():
        return sorted(type(f).__name__ for f in sys.meta_path
                      if type(f).__module__.startswith("revact."))

    def hooks():
        return len(module_mod._global_module_registration_hooks)

    import revact
    seen = {"finders_after_import": finders()}
    import ultralytics.nn.tasks as tasks
    seen["finders_after_ultralytics"] = finders()
    seen["tasks_has_names"] = hasattr(tasks, "DyReLUB") and hasattr(tasks, "ChannelAct")
    seen["registration_hooks"] = hooks()
    import revact.integrations.ultralytics as ry
    ry.register()
    seen["tasks_has_names_after_register"] = hasattr(tasks, "DyReLUB")
    seen["registration_hooks_after_register"] = hooks()
    print(json.dumps(seen))
""")


def _probe(no_hooks):
    env = {k: v for k, v in os.environ.items() if k != "REVACT_NO_IMPORT_HOOKS"}
    if no_hooks is not None:
        env["REVACT_NO_IMPORT_HOOKS"] = no_hooks
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": "1"}, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_installs_finders_and_registers_once_ultralytics_loads():
    seen = _probe(None)
    assert seen["finders_after_import"] == ["_AfterImport", "_AfterImport"]  # timm, Ultralytics
    # Ultralytics' is used up (one shot); timm's waits, unless Ultralytics imported timm.
    assert seen["finders_after_ultralytics"] in (["_AfterImport"], [])
    assert seen["tasks_has_names"] and seen["registration_hooks"] >= 1
    assert seen["registration_hooks_after_register"] == seen["registration_hooks"]


@pytest.mark.parametrize("value", ["1", "yes"])
def test_opt_out_installs_nothing_until_register_is_called(value):
    seen = _probe(value)
    assert seen["finders_after_import"] == [] and seen["finders_after_ultralytics"] == []
    assert not seen["tasks_has_names"] and seen["registration_hooks"] == 0
    assert seen["tasks_has_names_after_register"]
    assert seen["registration_hooks_after_register"] == 1


def test_opt_out_leaves_timm_alone_until_register_is_called():
    pytest.importorskip("timm")
    code = textwrap.dedent("""
        import json, revact, timm
        before = timm.list_models("revcol*")
        import revact.integrations.timm as rt
        rt.register()
        print(json.dumps([before, timm.list_models("revcol*")]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "REVACT_NO_IMPORT_HOOKS": "1"}, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [] and "revcol_tiny" in after
