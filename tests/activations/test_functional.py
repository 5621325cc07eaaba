"""The two kernels behind the adaptive activations, for every coefficient shape.

The kernels overwrite their own temporaries when grad mode is off; full-size coefficients
(whose gradient needs no reduction) and double backward are where that could go wrong.
"""

import pytest
import torch

from revact.activations.functional import acon, max_affine

X_SHAPE = (2, 3, 4, 5)
# Coefficient shapes that broadcast to X_SHAPE: scalar, per channel (with and without
# leading dims), per sample and channel, per position, full size (no reduction needed).
COEFF_SHAPES = [(1, 1, 1, 1), (1, 3, 1, 1), (3, 1, 1), (2, 3, 1, 1), (4, 5), X_SHAPE]


def _t(shape, rng, low=-2.0, high=2.0):
    return (torch.rand(shape, dtype=torch.float64, generator=rng) * (high - low) + low
            ).requires_grad_()


def _acon_reference(x, p1, p2, beta):
    d = (p1 - p2) * x
    return d * torch.sigmoid(beta * d) + p2 * x


def _max_affine_reference(x, a, b, scale):
    branches = torch.stack([a[..., k] * x + b[..., k] for k in range(a.shape[-1])])
    y = branches.max(dim=0).values
    return y if scale is None else y * scale


def _check_against(fn, reference, inputs):
    """Value and every gradient equal plain float64 autograd of the formula."""
    y = fn(*inputs)
    y_ref = reference(*inputs)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    wrt = [t for t in inputs if t is not None]
    grads = torch.autograd.grad(y, wrt, g)
    grads_ref = torch.autograd.grad(y_ref, wrt, g)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", COEFF_SHAPES)
def test_acon_value_and_grads(shape, rng):
    x = _t(X_SHAPE, rng, -4, 4)
    inputs = (x, _t(shape, rng), _t(shape, rng), _t(shape, rng, 0.1, 3))
    _check_against(acon, _acon_reference, inputs)
    assert torch.autograd.gradcheck(acon, inputs, fast_mode=True)


@pytest.mark.parametrize(("p1_shape", "p2_shape", "beta_shape"), [
    ((), (1, 3, 1, 1), (1, 3, 1, 1)),  # ACON-B: p1 = 1
    ((1, 3, 1, 1), (), ()),  # Swish-like: scalar p2 and β
    ((3, 1, 1), (2, 3, 1, 1), X_SHAPE),  # Meta-ACON pixel: full-size β
])
def test_acon_mixed_coefficient_shapes(p1_shape, p2_shape, beta_shape, rng):
    x = _t(X_SHAPE, rng, -4, 4)
    inputs = (x, _t(p1_shape, rng), _t(p2_shape, rng), _t(beta_shape, rng, 0.1, 3))
    _check_against(acon, _acon_reference, inputs)
    assert torch.autograd.gradcheck(acon, inputs, fast_mode=True)


@pytest.mark.parametrize("shape", COEFF_SHAPES)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("with_scale", [False, True])
def test_max_affine_value_and_grads(shape, k, with_scale, rng):
    x = _t(X_SHAPE, rng, -4, 4)
    scale = _t((2, 1, 4, 5), rng, 0, 1) if with_scale else None
    inputs = (x, _t((*shape, k), rng), _t((*shape, k), rng), scale)
    _check_against(max_affine, _max_affine_reference, inputs)
    assert torch.autograd.gradcheck(max_affine, inputs, fast_mode=True)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_double_backward(k, rng):
    """create_graph=True (e.g. gradient penalties) differentiates the backward itself."""
    x = _t(X_SHAPE, rng, -4, 4)
    coeffs = (_t((1, 3, 1, 1), rng), _t((1, 3, 1, 1), rng), _t((1, 3, 1, 1), rng, 0.1, 3))
    assert torch.autograd.gradgradcheck(acon, (x, *coeffs), fast_mode=True)
    ab = (_t((2, 3, 1, 1, k), rng), _t((2, 3, 1, 1, k), rng), _t((2, 1, 4, 5), rng, 0, 1))
    assert torch.autograd.gradgradcheck(max_affine, (x, *ab), fast_mode=True)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_inputs_and_incoming_gradient_are_not_modified(k, rng):
    """The kernels overwrite only buffers of their own, with and without autograd."""
    x = _t(X_SHAPE, rng, -4, 4)
    cases = [(acon, (x, *(_t(X_SHAPE, rng) for _ in range(3)))),
             (max_affine, (x, _t((*X_SHAPE, k), rng), _t((*X_SHAPE, k), rng),
                           _t(X_SHAPE, rng, 0, 1)))]
    for fn, inputs in cases:
        kept = [t.detach().clone() for t in inputs]
        with torch.no_grad():
            fn(*inputs)
        y = fn(*inputs)
        g = torch.randn_like(y)
        g_kept = g.clone()
        y.backward(g)
        assert torch.equal(g, g_kept)
        assert all(torch.equal(t, u) for t, u in zip(inputs, kept, strict=True))


@pytest.mark.parametrize("k", [2, 3])
def test_compiled_fullgraph_matches_eager(k, rng):
    """torch.compile(fullgraph=True) of ACON feeding a scaled max-affine, as in DY-ReLU-C."""
    def fn(x, p1, p2, beta, a, b, scale):
        return max_affine(acon(x, p1, p2, beta), a, b, scale)

    inputs = [t.float().detach().requires_grad_() for t in (
        _t(X_SHAPE, rng, -4, 4), _t((1, 3, 1, 1), rng), _t((1, 3, 1, 1), rng),
        _t((1, 3, 1, 1), rng, 0.1, 3), _t((2, 3, 1, 1, k), rng), _t((2, 3, 1, 1, k), rng),
        _t((2, 1, 4, 5), rng, 0, 1))]
    g = torch.randn(X_SHAPE, generator=rng)
    eager = fn(*inputs)
    grads = torch.autograd.grad(eager, inputs, g)
    compiled = torch.compile(fn, fullgraph=True)(*inputs)
    compiled_grads = torch.autograd.grad(compiled, inputs, g)
    torch.testing.assert_close(compiled, eager)
    for got, want in zip(compiled_grads, grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_acon_mixed_dtypes_compute_in_the_promoted_dtype(rng):
    """float32 x with bfloat16 p1/p2 and a 0-d float32 β: the maths runs in float32."""
    x = torch.randn(X_SHAPE, generator=rng).requires_grad_()
    p1, p2 = (torch.randn(1, 3, 1, 1, generator=rng).bfloat16().requires_grad_()
              for _ in range(2))
    beta = torch.tensor(1.7, requires_grad=True)
    y = acon(x, p1, p2, beta)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, p1, p2, beta), g)
    exact = [t.detach().double().requires_grad_() for t in (x, p1, p2, beta)]
    y_ref = _acon_reference(*exact)
    grads_ref = torch.autograd.grad(y_ref, exact, g.double())
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    assert [t.dtype for t in grads] == [x.dtype, p1.dtype, p2.dtype, beta.dtype]
    # β's gradient is a sum over every element: float32 keeps it to ~1e-6 relative,
    # products formed in bfloat16 would not (4e-3 measured).
    assert abs(grads[3].double() - grads_ref[3]) <= 1e-4 * abs(grads_ref[3])
    torch.testing.assert_close(grads[0].double(), grads_ref[0], rtol=1e-5, atol=1e-5)
