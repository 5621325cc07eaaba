"""The native CPU kernels: built, used where they apply, and equal to the PyTorch bodies.

Every test here checks that the native op really ran (the profiler lists dispatcher ops
as ``revact::...``), so none can pass by falling back to the PyTorch bodies unnoticed.
The float64 gradchecks of test_functional.py run through the native kernels as well
(their per-channel and per-sample shapes are native cases).
"""

import os
import platform
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import revact
from revact.activations.functional import acon, max_affine, spatial_mean, use_native_kernels


def _native_ops(fn) -> set[str]:
    """Names of revact's native ops that ``fn()`` ran."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events() if e.name.startswith("revact::")}


def _rand(shape, rng, low=-2.0, high=2.0, dtype=torch.float64):
    t = torch.rand(shape, dtype=torch.float64, generator=rng) * (high - low) + low
    return t.to(dtype).requires_grad_()


def _value_and_grads(fn, inputs, g):
    y = fn(*inputs)
    wrt = [t for t in inputs if t is not None]
    return (y, *torch.autograd.grad(y, wrt, g))


def _assert_native_equals_pytorch(fn, inputs, rng, rtol, atol, expect_ops):
    g = torch.randn(inputs[0].shape, dtype=inputs[0].dtype, generator=rng)
    ops = _native_ops(lambda: _value_and_grads(fn, inputs, g))
    assert ops == expect_ops
    native = _value_and_grads(fn, inputs, g)
    with use_native_kernels(False):
        assert not _native_ops(lambda: _value_and_grads(fn, inputs, g))
        reference = _value_and_grads(fn, inputs, g)
    for got, want in zip(native, reference, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def _laid_out(x, layout):
    """``x`` with the same values, channels-first (contiguous) or channels-last in memory
    (what channels-last feature maps and transposed tokens look like)."""
    if layout == "channels_first":
        return x
    return x.detach().movedim(1, -1).contiguous().movedim(-1, 1).requires_grad_()


ACON_OPS = {"revact::acon_forward", "revact::acon_backward"}
MAX2_OPS = {"revact::max2_forward", "revact::max2_backward"}
# x shapes: 2-D (one position), 1-D and 2-D maps, rows shorter than one 8-lane pack,
# rows with a partial last pack, one sample.
X_SHAPES = [(4, 3), (2, 3, 7), (2, 3, 4, 5), (2, 3, 1, 3), (3, 5, 9, 11), (1, 6, 5, 5)]


def test_native_kernels_are_built_here():
    """make test installs with them; a missing compiler would show here, not as slowness."""
    if platform.system() != "Linux" or shutil.which("c++") is None:
        pytest.skip("the native kernels are built on Linux with a C++ compiler")
    assert revact.native_kernels_available()


@pytest.mark.parametrize("x_shape", X_SHAPES)
@pytest.mark.parametrize("coeff", ["shared", "channel", "sample_channel", "mixed"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_acon_native_equals_pytorch(x_shape, coeff, dtype, layout, rng):
    n, c = x_shape[:2]
    ones = (1,) * (len(x_shape) - 2)
    shapes = {"shared": [(), (), ()],
              "channel": [(1, c, *ones)] * 3,
              "sample_channel": [(n, c, *ones)] * 3,
              "mixed": [(c, *ones), (), (n, c, *ones)]}[coeff]  # Meta-ACON's β per sample
    inputs = (_laid_out(_rand(x_shape, rng, -6, 6, dtype), layout),
              _rand(shapes[0], rng, dtype=dtype),
              _rand(shapes[1], rng, dtype=dtype), _rand(shapes[2], rng, 0.1, 3, dtype))
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    _assert_native_equals_pytorch(acon, inputs, rng, tol, tol, ACON_OPS)


@pytest.mark.parametrize("x_shape", X_SHAPES)
@pytest.mark.parametrize("coeff", ["shared", "channel", "sample_channel"])
@pytest.mark.parametrize("with_scale", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_max_affine_native_equals_pytorch(x_shape, coeff, with_scale, dtype, layout, rng):
    n, c = x_shape[:2]
    ones = (1,) * (len(x_shape) - 2)
    shape = {"shared": (1, 1, *ones, 2), "channel": (c, *ones, 2),
             "sample_channel": (n, c, *ones, 2)}[coeff]
    scale = _rand((n, 1, *x_shape[2:]), rng, 0, 1, dtype) if with_scale else None
    inputs = (_laid_out(_rand(x_shape, rng, -4, 4, dtype), layout),
              _rand(shape, rng, dtype=dtype), _rand(shape, rng, dtype=dtype), scale)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    _assert_native_equals_pytorch(max_affine, inputs, rng, tol, tol, MAX2_OPS)


def test_gradcheck_through_the_native_kernels(rng):
    """float64 gradcheck with rows that end in a partial pack (S = 35)."""
    x = _rand((2, 3, 5, 7), rng, -4, 4)
    acon_in = (x, _rand((1, 3, 1, 1), rng), _rand((1, 3, 1, 1), rng),
               _rand((2, 3, 1, 1), rng, 0.1, 3))
    max_in = (x, _rand((2, 3, 1, 1, 2), rng), _rand((2, 3, 1, 1, 2), rng),
              _rand((2, 1, 5, 7), rng, 0, 1))
    for fn, inputs, ops in ((acon, acon_in, ACON_OPS), (max_affine, max_in, MAX2_OPS)):
        assert _native_ops(lambda fn=fn, inputs=inputs: torch.autograd.gradcheck(
            fn, inputs, fast_mode=True)) == ops


def test_several_threads_give_the_same_numbers(rng):
    """Rows split over threads (and, with a scale, samples): the sums do not change."""
    x = _rand((4, 32, 30, 30), rng, -4, 4, torch.float32)
    inputs = (x, _rand((4, 32, 1, 1, 2), rng, dtype=torch.float32),
              _rand((4, 32, 1, 1, 2), rng, dtype=torch.float32),
              _rand((4, 1, 30, 30), rng, 0, 1, torch.float32))
    g = torch.randn(x.shape, generator=rng)
    one = _value_and_grads(max_affine, inputs, g)
    torch.set_num_threads(2)  # the autouse fixture restores the count
    two = _value_and_grads(max_affine, inputs, g)
    for a, b in zip(one, two, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_batch_of_one_gives_the_same_numbers_on_any_thread_count(channels_last, rng):
    """One sample, 48 x 48 = 2,304 positions: the work is split over positions (blocks of
    a sample), not samples, with sums in a fixed order; 1, 2 and 3 threads agree to the bit,
    for both layouts, with and without DY-ReLU-C's scale."""
    x = _rand((1, 24, 48, 48), rng, -4, 4, torch.float32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(x.shape, generator=rng)
    cases = [
        (acon, (x, _rand((1, 24, 1, 1), rng, dtype=torch.float32),
                _rand((1, 24, 1, 1), rng, dtype=torch.float32),
                _rand((1, 24, 1, 1), rng, 0.1, 3, torch.float32)), ACON_OPS),
        (max_affine, (x, _rand((1, 24, 1, 1, 2), rng, dtype=torch.float32),
                      _rand((1, 24, 1, 1, 2), rng, dtype=torch.float32), None), MAX2_OPS),
        (max_affine, (x, _rand((1, 24, 1, 1, 2), rng, dtype=torch.float32),
                      _rand((1, 24, 1, 1, 2), rng, dtype=torch.float32),
                      _rand((1, 1, 48, 48), rng, 0, 1, torch.float32)), MAX2_OPS),
    ]
    for fn, inputs, ops in cases:
        results = []
        for threads in (1, 2, 3):  # the autouse fixture restores the count
            torch.set_num_threads(threads)
            assert _native_ops(lambda fn=fn, inputs=inputs: _value_and_grads(fn, inputs, g)) == ops
            results.append(_value_and_grads(fn, inputs, g))
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("fn", [acon, max_affine])
def test_nan_and_inf_propagate_as_in_pytorch(fn, rng):
    x = torch.randn(2, 3, 4, 4, generator=rng)
    x[0, 0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    if fn is acon:
        coeffs = (torch.ones(1, 3, 1, 1), torch.full((1, 3, 1, 1), 0.25), torch.ones(()))
    else:
        coeffs = (torch.tensor([1.0, 0.2]).expand(1, 3, 1, 1, 2),
                  torch.zeros(1, 3, 1, 1, 2), None)
    with torch.no_grad():
        assert _native_ops(lambda: fn(x, *coeffs))
        native = fn(x, *coeffs)
        with use_native_kernels(False):
            reference = fn(x, *coeffs)
    torch.testing.assert_close(native, reference, equal_nan=True)


INF, NAN = float("inf"), float("nan")
# Inputs at the edges of exp's range and beyond: float32's exp overflows above 88.72 and
# reaches 0 below -103.97; x·x overflows float32 from 1.85e19.
SPECIALS = [1e38, -1e38, 3e38, -3e38, 88.7, -88.7, 88.73, -88.73, 104.0, -104.0, INF, -INF,
            NAN, 0.0]
SPECIALS_F64 = [1e300, -1e300, 709.7, -709.7, 745.2, -745.2]


def _with_specials(dtype, n, rng):
    """(n, C, 20) inputs in [-4, 4] holding each special value once: value i at channel i,
    position i, sample i mod n. So every (sample, channel) row, every channel and every
    (sample, position) holds at most one: each coefficient-gradient sum, and the scale's
    gradient (a sum over channels), has one extreme term, and sums in any order agree."""
    specials = SPECIALS + (SPECIALS_F64 if dtype == torch.float64 else [])
    x = torch.rand(n, len(specials), 20, dtype=torch.float64, generator=rng) * 8 - 4
    for i, value in enumerate(specials):
        x[i % n, i, i] = value
    return x.to(dtype)


def _coeff(shape, rng, dtype, low=-2.0, high=2.0):
    return (torch.rand(shape, dtype=torch.float64, generator=rng) * (high - low) + low).to(dtype)


def _assert_extremes_match(fn, inputs, dtype, rng, expect_ops):
    """Forward and every gradient, native against the PyTorch bodies: NaN and ±inf in
    the same places, finite values close."""
    inputs = [None if t is None else t.requires_grad_() if t.is_floating_point() else t
              for t in inputs]
    g = _coeff(inputs[0].shape, rng, dtype, -1, 1)  # |g| ≤ 1: g·x stays finite for finite x
    assert _native_ops(lambda: _value_and_grads(fn, inputs, g)) == expect_ops
    native = _value_and_grads(fn, inputs, g)
    with use_native_kernels(False):
        reference = _value_and_grads(fn, inputs, g)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for i, (got, want) in enumerate(zip(native, reference, strict=True)):
        assert torch.equal(got.isnan(), want.isnan()), f"output {i}: NaN positions differ"
        torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True,
                                   msg=lambda m, i=i: f"output {i}: {m}")


@pytest.mark.parametrize("form", ["acon_a", "acon_b", "acon_c", "meta_acon"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_acon_extremes_match_pytorch(form, dtype, layout, rng):
    """ACON-A's x = -1e38 gave -0.605 natively (0 in PyTorch) and -inf gave -inf (NaN):
    the kernels' exp clamped its input. Channels alternate between general coefficients,
    p2 = 0 and p1 = p2 (Δp = 0)."""
    x = _with_specials(dtype, 3, rng)
    c = x.shape[1]
    p1, p2 = _coeff((1, c, 1), rng, dtype), _coeff((1, c, 1), rng, dtype)
    p2[:, 1::3] = 0
    p1[:, 2::3] = p2[:, 2::3]
    beta = _coeff((1, c, 1), rng, dtype, 0.1, 3)
    one = torch.ones((), dtype=dtype)
    coeffs = {"acon_a": (one, torch.zeros((), dtype=dtype), one),
              "acon_b": (p1, p2, one),
              "acon_c": (p1, p2, beta),
              "meta_acon": (p1, p2, _coeff((3, c, 1), rng, dtype, 0.1, 3))}[form]
    if form == "acon_a":  # constants: only x has a gradient
        coeffs = tuple(t.detach() for t in coeffs)
        inputs = [_laid_out(x.requires_grad_(), layout), *coeffs]

        def fn(x):
            return acon(x, *coeffs)

        _assert_extremes_match(fn, inputs[:1], dtype, rng, ACON_OPS)
        return
    inputs = [_laid_out(x.requires_grad_(), layout), *(t.clone() for t in coeffs)]
    _assert_extremes_match(acon, inputs, dtype, rng, ACON_OPS)


@pytest.mark.parametrize("coeff", ["channel", "sample_channel"])
@pytest.mark.parametrize("with_scale", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_max_affine_extremes_match_pytorch(coeff, with_scale, dtype, layout, rng):
    """DY-ReLU's K = 2 maximum (B, and C with its scale, some of it exactly 0); channels
    cycle through general coefficients, a1 = a0 (Δa = 0, so the winner test is NaN at
    ±inf), a0 = b0 = 0 (a zero slope: 0·inf) and identical branches."""
    x = _with_specials(dtype, 3, rng)
    n, c = x.shape[:2]
    shape = (1, c, 1, 2) if coeff == "channel" else (n, c, 1, 2)
    a, b = _coeff(shape, rng, dtype), _coeff(shape, rng, dtype)
    a[:, 1::4, :, 1] = a[:, 1::4, :, 0]
    a[:, 2::4, :, 0] = 0
    b[:, 2::4, :, 0] = 0
    a[:, 3::4, :, 1] = a[:, 3::4, :, 0]
    b[:, 3::4, :, 1] = b[:, 3::4, :, 0]
    scale = None
    if with_scale:
        scale = _coeff((n, 1, x.shape[2]), rng, dtype, 0, 1)
        scale[:, :, ::5] = 0
    inputs = [_laid_out(x.requires_grad_(), layout), a, b, scale]
    _assert_extremes_match(max_affine, inputs, dtype, rng, MAX2_OPS)


def test_sigmoid_inside_the_kernels_is_pytorchs(rng):
    """x·σ(x) (ACON-A) over float32's whole exp range and past it, in 2·10^6 steps:
    the kernels' exp (their own, as exact as SLEEF's) against PyTorch's (SLEEF's), zeros,
    subnormals and overflow included."""
    x = torch.linspace(-110, 110, 2_000_001).view(1, 1, -1)
    one = torch.ones(())
    with torch.no_grad():
        assert _native_ops(lambda: acon(x, one, torch.zeros(()), one))
        native = acon(x, one, torch.zeros(()), one)
        with use_native_kernels(False):
            reference = acon(x, one, torch.zeros(()), one)
    assert torch.equal(native == 0, reference == 0)
    torch.testing.assert_close(native, reference, rtol=5e-7, atol=0)


# The environment that holds this CPU to each lower build of the kernels (the highest it
# has runs in this process).
LOWER_BUILDS = {"baseline": {"REVACT_CPU_BASELINE": "1"},
                "avx2": {"REVACT_CPU_NO_AVX512": "1"}}


def _lower_build_env(build: str) -> dict:
    """The environment that runs ``build`` in a fresh process, checked there; the test
    skips where this library or CPU has no such build, or where it is this process's own
    (nothing lower to compare)."""
    env = {**os.environ, **LOWER_BUILDS[build]}
    done = subprocess.run(
        [sys.executable, "-c", "import revact; print(revact.info()['native']['variant'])"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    variant, here = done.stdout.strip(), revact.info()["native"]["variant"]
    if variant != build and not variant.startswith(f"{build} ("):
        pytest.skip(f"this library or CPU has no {build} build to hold to (got {variant})")
    if variant == here:
        pytest.skip(f"the {build} build is this process's own")
    return env


@pytest.mark.parametrize("build", sorted(LOWER_BUILDS))
def test_extremes_in_the_lower_builds(build):
    """The extremes tests again in each lower build (the baseline one without AVX2; the
    AVX2 one on a CPU with AVX-512), in a fresh process."""
    env = _lower_build_env(build)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
         "extremes_match or sigmoid_inside"],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _op_samples(rng, requires_grad):
    """(op, args) for every native op: both layouts, DY-ReLU-C's scale or none, float32
    and float64, a per-channel coefficient expanded over the batch (stride 0) as revact
    passes it."""
    n, c, s = 2, 3, 20  # s = 20: full packs and a tail with 8 and with 16 lanes
    for channels_last in (False, True):
        for dtype in (torch.float32, torch.float64):
            def t(*shape, dtype=dtype):
                return torch.randn(*shape, generator=rng, dtype=dtype).requires_grad_(
                    requires_grad)

            x = t(n, s, c) if channels_last else t(n, c, s)
            grad = torch.randn(x.shape, generator=rng, dtype=dtype)
            per_channel = t(1, c).expand(n, c)
            p2, beta = t(n, c), t(n, c).abs() + 0.1
            a, b = t(n, c, 2), t(n, c, 2)
            for scale in (None, torch.rand(n, s, 1, generator=rng, dtype=dtype)
                          .requires_grad_(requires_grad)):
                if scale is not None and not channels_last:
                    scale = scale.detach().view(n, 1, s).requires_grad_(requires_grad)
                yield "max2_forward", (x, a, b, scale, channels_last)
                yield "max2_backward", (grad, x, a, b, scale, channels_last)
            yield "acon_forward", (x, per_channel, p2, beta, channels_last)
            yield "acon_backward", (grad, x, per_channel, p2, beta, channels_last)


@pytest.mark.skipif(not hasattr(torch.library, "opcheck"), reason="torch.library.opcheck "
                    "is torch >= 2.4")
def test_ops_pass_opcheck(rng):
    """Each op is a complete PyTorch op, as torchvision's optests check theirs: schema,
    fake kernel (metadata of the outputs), autograd registration, and AOT dispatch with
    dynamic shapes (the forward ops' gradients too). The backward ops are not
    differentiable (a double backward raises): their AOT check runs without gradients."""
    assert revact.native_kernels_available()
    seen = set()
    for requires_grad in (True, False):
        for name, args in _op_samples(rng, requires_grad):
            op = getattr(torch.ops.revact, name).default
            backward = name.endswith("backward")
            if requires_grad:
                utils = (["test_schema", "test_autograd_registration"] if backward else
                         ["test_schema", "test_autograd_registration", "test_faketensor",
                          "test_aot_dispatch_dynamic"])
            else:
                utils = ["test_schema", "test_faketensor", "test_aot_dispatch_dynamic"]
            torch.library.opcheck(op, args, test_utils=utils)
            seen.add(name)
    assert seen == {"acon_forward", "acon_backward", "max2_forward", "max2_backward"}


def test_ops_differentiate_by_their_registered_formulas(rng):
    """torch.ops.revact.*_forward used directly: their autograd formulas (the backward
    ops) agree with gradcheck; a double backward through the backward ops says why it
    cannot."""
    x = torch.randn(2, 3, 10, generator=rng, dtype=torch.float64, requires_grad=True)
    rows = [torch.randn(2, 3, generator=rng, dtype=torch.float64, requires_grad=True)
            for _ in range(3)]
    rows[2] = rows[2].detach().abs().add(0.1).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda *t: torch.ops.revact.acon_forward(*t, False), (x, *rows), fast_mode=True)
    a, b = (torch.randn(2, 3, 2, generator=rng, dtype=torch.float64, requires_grad=True)
            for _ in range(2))
    scale = torch.rand(2, 1, 10, generator=rng, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *t: torch.ops.revact.max2_forward(*t, False), (x, a, b, scale),
        fast_mode=True)
    y = torch.ops.revact.acon_forward(x, *rows, False)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no derivative of their own"):
        g.sum().backward()


@pytest.mark.parametrize("case", ["k3", "per_position", "strided", "bfloat16",
                                  "double_backward"])
def test_cases_the_native_kernels_leave_to_pytorch(case, rng):
    x = _rand((2, 3, 4, 5), rng, -4, 4)
    a, b = _rand((1, 3, 1, 1, 2), rng), _rand((1, 3, 1, 1, 2), rng)
    if case == "k3":
        a, b = _rand((1, 3, 1, 1, 3), rng), _rand((1, 3, 1, 1, 3), rng)
    elif case == "per_position":
        a, b = _rand((4, 5, 2), rng), _rand((4, 5, 2), rng)
    elif case == "strided":  # every other column: neither layout is contiguous
        x = _rand((2, 3, 4, 10), rng, -4, 4)[..., ::2]
    elif case == "bfloat16":
        x, a, b = (t.detach().bfloat16().requires_grad_() for t in (x, a, b))

    def run():
        y = max_affine(x, a, b)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=case == "double_backward")
        return g

    ops = _native_ops(run)
    # Double backward: the first backward may run natively, what it records may not.
    assert ops <= ({"revact::max2_forward"} if case == "double_backward" else set())


@pytest.mark.parametrize("build", sorted(LOWER_BUILDS))
def test_lower_builds_equal_this_one(build, tmp_path, rng):
    """Each lower build of the kernels (what a CPU without AVX-512, or without AVX2, gets)
    in a fresh process: its numbers match this process's."""
    env = _lower_build_env(build)
    x = torch.randn(3, 5, 9, 11, generator=rng)
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(f"""
        import torch
        from revact.activations.functional import acon, max_affine
        x = torch.load({str(tmp_path / "x.pt")!r}).requires_grad_()
        p = torch.linspace(-1, 1, 5).view(1, 5, 1, 1)
        y = acon(x, p, 0.5 * p, torch.ones(())) + max_affine(
            x, torch.stack([p, -p], -1), torch.stack([0 * p, p], -1))
        y.backward(torch.ones_like(y))
        torch.save((y.detach(), x.grad), {str(tmp_path / "out.pt")!r})
    """)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    y_lower, g_lower = torch.load(tmp_path / "out.pt")
    xg = x.clone().requires_grad_()
    p = torch.linspace(-1, 1, 5).view(1, 5, 1, 1)
    assert _native_ops(lambda: acon(xg, p, 0.5 * p, torch.ones(())))
    y = acon(xg, p, 0.5 * p, torch.ones(())) + max_affine(
        xg, torch.stack([p, -p], -1), torch.stack([0 * p, p], -1))
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(y_lower, y.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_lower, xg.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dims", [(2, 3), (2,), (1,)])
def test_spatial_mean_is_mean_with_a_broadcast_gradient(dims, rng):
    x = _rand((2, 3, 4, 5), rng)
    torch.testing.assert_close(spatial_mean(x, dims), x.mean(dim=dims))
    (g,) = torch.autograd.grad(spatial_mean(x, dims).sum(), x)
    assert g.stride().count(0) == len(dims)  # a view, not a full-size tensor
    assert torch.autograd.gradcheck(lambda t: spatial_mean(t, dims), (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda t: spatial_mean(t, dims) ** 2, (x,),
                                        fast_mode=True)


def test_spatial_mean_keeps_the_input_dtype_of_its_gradient(rng):
    x = _rand((2, 3, 4, 5), rng, dtype=torch.bfloat16)
    m = spatial_mean(x, (2, 3), torch.float32)
    assert m.dtype == torch.float32
    (g,) = torch.autograd.grad(m.sum(), x)
    assert g.dtype == torch.bfloat16


@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_compile_calls_the_native_kernels(channels_last, rng):
    """Under torch.compile the ops stay in the graph, forward and backward (fake kernels
    give their shapes, registered formulas the gradients), with the eager numbers, in a
    graph AOTAutograd caches (no custom autograd.Function in it)."""
    from torch._dynamo.utils import counters

    def fn(x, p1, p2, beta, a, b, scale):
        return max_affine(acon(x, p1, p2, beta), a, b, scale)

    inputs = [_rand(shape, rng, dtype=torch.float32) for shape in (
        (2, 3, 5, 7), (1, 3, 1, 1), (1, 3, 1, 1), (2, 3, 1, 1), (2, 3, 1, 1, 2),
        (2, 3, 1, 1, 2), (2, 1, 5, 7))]
    if channels_last:
        inputs[0] = inputs[0].detach().to(memory_format=torch.channels_last).requires_grad_()
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(fn, fullgraph=True)

    def step(f):
        y = f(*inputs)
        return (y, *torch.autograd.grad(y.square().sum(), inputs))

    step(compiled)
    aot = counters["aot_autograd"]
    assert aot["autograd_cache_bypass"] == 0
    assert aot["autograd_cache_miss"] + aot["autograd_cache_hit"] >= 1  # the cache was asked
    assert _native_ops(lambda: step(compiled)) == ACON_OPS | MAX2_OPS
    for got, want in zip(step(compiled), step(fn), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["acon_c", "meta_acon", "dyrelu_b", "dyrelu_c"])
def test_channels_last_modules_run_natively(name, rng):
    """Tokens (N, L, C) and channels-last maps: what ChannelsLast hands its activation,
    and DY-ReLU's layout='tokens', take the channels-last kernels."""
    from revact.activations.channels_last import create_channels_last_act

    act = create_channels_last_act(name, 6)
    x = torch.randn(2, 5, 7, 6, generator=rng, requires_grad=True)
    ops = _native_ops(lambda: act(x).square().sum().backward())
    assert ops == (ACON_OPS if "acon" in name else MAX2_OPS)
    maps = torch.randn(2, 6, 5, 7, generator=rng).to(memory_format=torch.channels_last)
    act_cf = revact.create_act(name, channels=6)
    assert _native_ops(lambda: act_cf(maps.requires_grad_()).sum().backward())


def test_compiling_first_in_a_fresh_process_needs_no_eager_call():
    """fullgraph=True before anything ran eagerly: loading the kernels is not traced."""
    script = textwrap.dedent("""
        import torch, revact
        m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), revact.AconC(8), revact.DyReLUB(8))
        x = torch.randn(2, 3, 6, 6)
        y = torch.compile(m, fullgraph=True)(x)
        torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


def test_channels_last_results_can_be_modified_in_place(rng):
    """The kernels return (N, *, C) tensors seen as (N, C, *): not a view autograd would
    forbid modifying in place (as after an inplace Dropout or ReLU)."""
    x = torch.randn(2, 8, 5, 5, generator=rng).to(memory_format=torch.channels_last)
    p = torch.randn(1, 8, 1, 1, generator=rng, requires_grad=True)
    x.requires_grad_()
    y = acon(x, p, 0.5 * p, torch.ones(()))
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.add_(1).sum().backward()
    tokens = torch.randn(2, 5, 8, generator=rng, requires_grad=True)
    layer = revact.DyReLUB(8, layout="tokens")
    assert _native_ops(lambda: layer(tokens).mul_(2).sum().backward()) == MAX2_OPS


def test_fused_mode_still_runs_the_scaled_backward_natively(rng):
    """use_fused_kernels() on CPU: DY-ReLU-C's backward with its scale is one native pass,
    not the compiled two-kernel split the PyTorch bodies use."""
    from revact.activations.functional import use_fused_kernels

    m = revact.DyReLUC(6)
    x = torch.randn(2, 6, 5, 5, generator=rng, requires_grad=True)
    eager = torch.autograd.grad(m(x).square().sum(), x)[0]
    with use_fused_kernels():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fused = torch.autograd.grad(m(x).square().sum(), x)[0]
    names = {e.name for e in prof.events()}
    assert MAX2_OPS <= names
    assert not any("Compiled" in n for n in names)  # nothing ran through Inductor
    torch.testing.assert_close(fused, eager)
