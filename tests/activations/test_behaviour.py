"""Memory, precision modes, serialisation and compilation of the adaptive activations."""

import pytest
import torch

import revact
from revact import create_act
from revact.activations.functional import use_fused_kernels
from revact.bench import saved_tensor_bytes as saved_bytes

ADAPTIVE = ["swish_learnable", "acon_a", "acon_b", "acon_c", "meta_acon", "dyrelu_a", "dyrelu_b",
            "dyrelu_c"]


def _build(name, channels):
    if name == "swish_learnable":
        return revact.Swish(learnable=True, channels=channels)
    return create_act(name, channels=channels)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_saves_about_one_input_for_backward(name):
    # ReLU keeps one input-sized tensor; so do ours (plus coefficients of size N·C or
    # N·H·W). The seeds' versions keep 3–9.
    x = torch.randn(8, 32, 24, 24, requires_grad=True)
    m = _build(name, 32)
    relu = saved_bytes(torch.relu, x)
    ours = saved_bytes(m, x)
    assert relu == x.nbytes
    # DY-ReLU-C's attention keeps a few (N, H, W) maps: 1/C of the input each.
    spatial_maps = 5 * x[:, 0].nbytes if name == "dyrelu_c" else 0
    assert ours <= 1.05 * relu + spatial_maps, f"{name} saves {ours / relu:.2f}× the input"


def test_saved_bytes_of_acon_c_are_input_plus_parameters():
    x = torch.randn(4, 16, 10, 10, requires_grad=True)
    assert saved_bytes(revact.AconC(16), x) == x.nbytes + 3 * 16 * 4


@pytest.mark.parametrize("name", ADAPTIVE)
def test_no_grad_and_grad_paths_agree(name, rng):
    m = _build(name, 8).eval()
    x = torch.randn(3, 8, 6, 6, generator=rng)
    with torch.no_grad():
        y0 = m(x)
    y1 = m(x.requires_grad_())
    assert y1.grad_fn is not None
    torch.testing.assert_close(y0, y1, rtol=0, atol=0)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_bfloat16_autocast_close_to_float32(name, rng):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), _build(name, 16))
    x = torch.randn(4, 3, 12, 12, generator=rng)
    ref = net(x)
    ref.square().mean().backward()
    ref_grad = net[0].weight.grad.clone()
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.bfloat16  # the activation keeps the conv's dtype
    out.float().square().mean().backward()
    err = (out.float() - ref).norm() / ref.norm()
    grad_err = (net[0].weight.grad - ref_grad).norm() / ref_grad.norm()
    assert err < 3e-2 and grad_err < 6e-2, (err.item(), grad_err.item())


@pytest.mark.parametrize("name", ADAPTIVE)
def test_state_dict_round_trip(name, rng):
    a, b = _build(name, 8), _build(name, 8)
    with torch.no_grad():
        for p in a.parameters():
            p.copy_(torch.randn(p.shape, generator=rng))
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 8, 5, 5, generator=rng)
    torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def test_dyrelu_b_compiles_fullgraph(rng):
    m = revact.DyReLUB(16)
    x = torch.randn(2, 16, 7, 7, generator=rng, requires_grad=True)
    eager = m(x)
    (g_eager,) = torch.autograd.grad(eager.sum(), x)
    compiled = torch.compile(m, fullgraph=True)
    out = compiled(x)
    (g_comp,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_comp, g_eager)


def test_fused_kernels_give_the_same_numbers(rng):
    x = torch.randn(2, 8, 6, 6, generator=rng, requires_grad=True)
    for m in (revact.AconC(8), revact.DyReLUC(8)):
        params = list(m.parameters())
        eager = m(x)
        grads = torch.autograd.grad(eager.square().sum(), [x, *params])
        with use_fused_kernels():
            fused = m(x)
            fused_grads = torch.autograd.grad(fused.square().sum(), [x, *params])
        torch.testing.assert_close(fused, eager)
        for g, h in zip(fused_grads, grads, strict=True):
            torch.testing.assert_close(g, h)


@pytest.mark.parametrize("name", ADAPTIVE)
@pytest.mark.filterwarnings("ignore:`torch.jit.trace")  # deprecated in torch 2.x, still used
def test_jit_trace_passes_its_own_check(name, rng):
    # Issue 11: Ultralytics' TorchScript export traces the model; the trace's default
    # check re-traces under no_grad, where the kernels used to switch to in-place steps.
    import warnings

    torch.manual_seed(0)
    m = _build(name, 8).eval()
    x = torch.randn(2, 8, 6, 6, generator=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # no constant-folded checks
        traced = torch.jit.trace(m, x)  # check_trace=True: raises TracingCheckError
    other = torch.randn(3, 8, 5, 7, generator=rng)  # the trace generalises over N, H, W
    # A trace records the PyTorch operations (never the native kernels, which export
    # nowhere): bit-equal to the module run on them.
    with torch.no_grad(), revact.use_native_kernels(False):
        torch.testing.assert_close(traced(other), m(other), rtol=0, atol=0)
