import atexit
import os
import secrets
import shutil
import tempfile
import zlib

import pytest
import torch

# Ultralytics reads these when it is first imported, which may happen while tests are
# collected: no network, no automatic pip installs, and a throwaway settings folder
# instead of the user's. Subprocesses started by tests inherit them.
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "False"
if "YOLO_CONFIG_DIR" not in os.environ:
    os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="revact-yolo-settings-")
    atexit.register(shutil.rmtree, os.environ["YOLO_CONFIG_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _one_thread():
    """The suite's tensors are small: one thread runs them fastest and steadiest on a
    shared 2-core machine (a second thread mostly waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seeded_global_rng(request):
    """The global torch RNG starts every test from a seed fixed by the test's id.

    Modules initialise their weights from the global RNG: a tolerance test that builds one
    then sees the same weights on every run, alone or in the suite, whatever ran before it.
    Random *inputs* come from :func:`rng`, whose seed differs between runs on purpose.
    """
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def rng() -> torch.Generator:
    """A freshly seeded generator per test; the seed differs between runs on purpose and is
    printed (shown when the test fails); ``REVACT_TEST_SEED=<seed>`` repeats a failure.

    The seed comes from the operating system, not from torch's global RNG, which this
    fixture leaves alone (see :func:`_seeded_global_rng`).
    """
    seed = int(os.environ.get("REVACT_TEST_SEED") or secrets.randbelow(2**31))
    print(f"rng seed: {seed} (REVACT_TEST_SEED={seed} repeats it)")
    return torch.Generator().manual_seed(seed)


def _gradcheck_module(module: torch.nn.Module, *inputs: torch.Tensor) -> bool:
    """gradcheck w.r.t. the inputs and every parameter of ``module`` (float64).

    fast_mode checks the Jacobian along random directions instead of column by column:
    the same test of the backward, without one forward per parameter element.
    """
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]
    n_in = len(inputs)

    def call(*tensors):
        state = dict(zip(names, tensors[n_in:], strict=True))
        return torch.func.functional_call(module, state, tensors[:n_in])

    inputs = tuple(t.detach().clone().requires_grad_() for t in inputs)
    return torch.autograd.gradcheck(call, (*inputs, *params), fast_mode=True)


@pytest.fixture
def gradcheck_module():
    return _gradcheck_module
