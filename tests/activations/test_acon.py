"""ACON-A/B/C and Meta-ACON against float64 NumPy formulas written here."""

import numpy as np
import pytest
import torch

from revact import AconA, AconB, AconC, MetaAcon, MetaAconC, create_act


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _smooth_max(eta_a, eta_b, beta):
    d = eta_a - eta_b
    return d * _sig(beta * d) + eta_b


def _chan(p, ndim):
    """(1, C, 1, 1) parameter → NumPy array broadcasting over an ndim-D input."""
    return p.detach().numpy().reshape(1, -1, *([1] * (ndim - 2)))


def _randomise(module, rng):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=rng, dtype=p.dtype))
    return module


SHAPES = [(3, 5, 11), (2, 5, 6, 7)]


@pytest.mark.parametrize("shape", SHAPES)
def test_acon_a(shape, rng):
    m = _randomise(AconA(5).double(), rng)
    x = torch.randn(shape, dtype=torch.float64, generator=rng) * 3
    xn = x.numpy()
    expected = _smooth_max(xn, 0.0, _chan(m.beta, x.dim()))
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
def test_acon_b(shape, rng):
    m = _randomise(AconB(5).double(), rng)
    x = torch.randn(shape, dtype=torch.float64, generator=rng) * 3
    xn = x.numpy()
    p = _chan(m.p, x.dim())
    expected = _smooth_max(xn, p * xn, _chan(m.beta, x.dim()))
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
def test_acon_c(shape, rng):
    m = _randomise(AconC(5).double(), rng)
    x = torch.randn(shape, dtype=torch.float64, generator=rng) * 3
    xn, nd = x.numpy(), x.dim()
    expected = _smooth_max(_chan(m.p1, nd) * xn, _chan(m.p2, nd) * xn, _chan(m.beta, nd))
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_acon_c_derivative_limits():
    # With β(p1 - p2) > 0 the slope tends to p1 at +∞ and to p2 at -∞.
    m = AconC(2).double()
    with torch.no_grad():
        m.p1.copy_(torch.tensor([1.5, 0.9]).view(1, 2, 1, 1))
        m.p2.copy_(torch.tensor([0.2, -0.4]).view(1, 2, 1, 1))
    x = torch.tensor([-60.0, 60.0], dtype=torch.float64).expand(1, 2, 2).clone().requires_grad_()
    (g,) = torch.autograd.grad(m(x).sum(), x)
    torch.testing.assert_close(g[0, :, 0], torch.tensor([0.2, -0.4], dtype=torch.float64))
    torch.testing.assert_close(g[0, :, 1], torch.tensor([1.5, 0.9], dtype=torch.float64))


def _bn(t, bn, training):
    w, b = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    if training:
        mean, var = t.mean(axis=0), t.var(axis=0)
    else:
        mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    return (t - mean) / np.sqrt(var + bn.eps) * w + b


def _meta_beta_channel(m, xn, training):
    pooled = xn.reshape(xn.shape[0], xn.shape[1], -1).mean(-1)  # (N, C)
    h = pooled @ m.fc1.weight.detach().numpy()[:, :, 0, 0].T + m.fc1.bias.detach().numpy()
    h = _bn(h, m.bn1, training)
    g = h @ m.fc2.weight.detach().numpy()[:, :, 0, 0].T + m.fc2.bias.detach().numpy()
    g = _bn(g, m.bn2, training)
    return _sig(g).reshape(xn.shape[0], xn.shape[1], *([1] * (xn.ndim - 2)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [False, True])
def test_meta_acon_channel(shape, training, rng):
    m = _randomise(MetaAcon(5, r=2).double(), rng)
    with torch.no_grad():
        for bn in (m.bn1, m.bn2):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=rng))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=rng) + 0.5)
    m.train(training)
    x = torch.randn(shape, dtype=torch.float64, generator=rng) * 3
    xn, nd = x.numpy(), x.dim()
    beta = _meta_beta_channel(m, xn, training)
    expected = _smooth_max(_chan(m.p1, nd) * xn, _chan(m.p2, nd) * xn, beta)
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("generator", ["layer", "pixel"])
def test_meta_acon_layer_and_pixel(generator, rng):
    m = _randomise(MetaAcon(4, generator=generator).double(), rng)
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64, generator=rng) * 0.05
    xn = x.numpy()
    if generator == "layer":
        beta = _sig(xn.sum(axis=(1, 2, 3), keepdims=True))
    else:
        beta = _sig(xn)
    expected = _smooth_max(_chan(m.p1, 4) * xn, _chan(m.p2, 4) * xn, beta)
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_meta_acon_official_shapes_and_alias():
    assert MetaAconC is MetaAcon
    m = MetaAcon(64)  # hidden = max(16, 64 // 16) = 16
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["fc1.weight"] == (16, 64, 1, 1)
    assert shapes["fc2.weight"] == (64, 16, 1, 1)
    assert shapes["p1"] == shapes["p2"] == (1, 64, 1, 1)
    assert MetaAcon(512).fc1.weight.shape == (32, 512, 1, 1)


def _official_acon_c_state(c, rng):
    return {n: torch.randn(1, c, 1, 1, generator=rng) for n in ("p1", "p2", "beta")}


def _official_meta_acon_state(c, rng, r=16):
    hidden = max(r, c // r)
    state = {
        "fc1.weight": torch.randn(hidden, c, 1, 1, generator=rng),
        "fc1.bias": torch.randn(hidden, generator=rng),
        "fc2.weight": torch.randn(c, hidden, 1, 1, generator=rng),
        "fc2.bias": torch.randn(c, generator=rng),
        "p1": torch.randn(1, c, 1, 1, generator=rng),
        "p2": torch.randn(1, c, 1, 1, generator=rng),
    }
    for bn, n in (("bn1", hidden), ("bn2", c)):
        state[f"{bn}.weight"] = torch.rand(n, generator=rng) + 0.5
        state[f"{bn}.bias"] = torch.randn(n, generator=rng)
        state[f"{bn}.running_mean"] = torch.randn(n, generator=rng)
        state[f"{bn}.running_var"] = torch.rand(n, generator=rng) + 0.5
        state[f"{bn}.num_batches_tracked"] = torch.tensor(100)
    return state


def test_official_acon_c_checkpoint_loads_strict(rng):
    state = _official_acon_c_state(24, rng)
    m = AconC(24)
    m.load_state_dict(state, strict=True)
    x = torch.randn(2, 24, 5, 5, generator=rng)
    p1, p2, beta = (state[k].numpy() for k in ("p1", "p2", "beta"))
    expected = _smooth_max(p1 * x.numpy(), p2 * x.numpy(), beta)
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_official_meta_acon_checkpoint_loads_strict(rng):
    state = _official_meta_acon_state(48, rng)
    m = MetaAcon(48).eval()
    m.load_state_dict(state, strict=True)
    m = m.double()
    x = torch.randn(2, 48, 5, 5, generator=rng, dtype=torch.float64)
    beta = _meta_beta_channel(m, x.numpy(), training=False)
    p1, p2 = state["p1"].double().numpy(), state["p2"].double().numpy()
    expected = _smooth_max(p1 * x.numpy(), p2 * x.numpy(), beta)
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-10)


def test_meta_acon_trains_with_batch_size_one(rng):
    m = MetaAcon(32).train()
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    x = torch.randn(1, 32, 8, 8, generator=rng, requires_grad=True)
    m(x).sum().backward()  # the official module raises "Expected more than 1 value"
    assert x.grad is not None and m.p1.grad is not None and m.fc1.weight.grad is not None
    for k, v in before.items():
        torch.testing.assert_close(m.state_dict()[k], v)
    # A larger batch still updates the running statistics.
    m(torch.randn(4, 32, 8, 8, generator=rng))
    assert not torch.equal(m.bn1.running_mean, before["bn1.running_mean"])


def test_meta_acon_nan_in_training_behaves_like_batchnorm_and_is_documented(rng):
    # Issue 11, defect 10: the decision is torch's BatchNorm behaviour, written down, with
    # a way back. A guard would not save a network whose own BatchNorms see the batch too.
    m, bn = MetaAcon(8).train(), torch.nn.BatchNorm2d(8).train()
    x = torch.randn(4, 8, 5, 5, generator=rng)
    x[1, 2, 3, 4] = float("nan")
    m(x), bn(x)
    for stats in (m.bn1.running_mean, m.bn2.running_var, bn.running_mean):
        assert stats.isnan().any()  # poisoned, alike
    clean = torch.randn(3, 8, 5, 5, generator=rng)
    assert m.eval()(clean).isnan().all()
    for b in (m.bn1, m.bn2):  # the documented recovery
        b.reset_running_stats()
    assert m(clean).isfinite().all()
    # Eval mode: a non-finite sample affects only its own output.
    y = m(torch.cat([x[1:2], clean]))
    assert y[0].isnan().any() and y[1:].isfinite().all()
    doc = " ".join(MetaAcon.__doc__.split())
    assert "writes NaN into G's running statistics" in doc and "reset_running_stats()" in doc


@pytest.mark.parametrize("name", ["acon_a", "acon_b", "acon_c", "meta_acon"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck(name, shape, rng, gradcheck_module):
    kwargs = {"r": 2} if name == "meta_acon" else {}
    m = _randomise(create_act(name, channels=5, **kwargs).double(), rng).eval()
    x = torch.randn(shape, dtype=torch.float64, generator=rng)
    assert gradcheck_module(m, x)


def test_meta_acon_gradcheck_training_mode(rng):
    m = MetaAcon(4, r=2).double().train()
    x = torch.randn(3, 4, 5, dtype=torch.float64, generator=rng, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (x,))


@pytest.mark.parametrize("generator", ["layer", "pixel"])
def test_meta_acon_generators_gradcheck(generator, rng):
    m = MetaAcon(4, generator=generator).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=rng, requires_grad=True) * 0.1
    assert torch.autograd.gradcheck(lambda t: m(t), (x.detach().requires_grad_(),))


# --- start options: init="swish" / "paper" ---


@pytest.mark.parametrize("cls", [AconC, MetaAcon])
def test_init_swish_is_silu_in_float64(cls, rng):
    m = cls(6, init="swish").double().eval()
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64, generator=rng) * 4
    xn = x.numpy()
    if cls is AconC:
        expected = xn * _sig(xn)  # p1 = 1, p2 = 0, β = 1: x·σ(x)
    else:
        beta = m.beta(x).detach().numpy()  # β = G(x) still comes from the input
        expected = xn * _sig(beta * xn)
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    assert torch.equal(m.p1, torch.ones_like(m.p1)) and torch.equal(m.p2, torch.zeros_like(m.p2))


def _official_draws(cls, channels):
    """What the official code draws from the global RNG, in its order: Meta-ACON's G
    (conv, BN, conv, BN) first, then p1 and p2 from a standard normal."""
    if cls is MetaAcon:
        hidden = max(16, channels // 16)
        torch.nn.Conv2d(channels, hidden, 1)
        torch.nn.BatchNorm2d(hidden)
        torch.nn.Conv2d(hidden, channels, 1)
        torch.nn.BatchNorm2d(channels)
    return torch.randn(1, channels, 1, 1), torch.randn(1, channels, 1, 1)


@pytest.mark.parametrize("cls", [AconC, MetaAcon])
def test_init_paper_draws_what_the_official_code_draws(cls):
    """``'paper'`` (the default) gives the parameters the same seed gave before the option
    existed; ``'swish'`` consumes the same draws, so a network built from one seed has the
    same weights outside the activations whichever start they take."""
    torch.manual_seed(123)
    p1, p2 = _official_draws(cls, 7)
    after_official = torch.randn(5)
    for init in ("paper", "swish"):
        torch.manual_seed(123)
        m = cls(7) if init == "paper" else cls(7, init=init)
        assert torch.equal(torch.randn(5), after_official)
    torch.manual_seed(123)
    m = cls(7)
    assert m.init == "paper"
    assert torch.equal(m.p1, p1) and torch.equal(m.p2, p2)


@pytest.mark.parametrize("cls", [AconC, MetaAcon])
def test_init_unknown_is_refused(cls):
    with pytest.raises(ValueError, match=r"init must be one of \('paper', 'swish'\), got 'zero'"):
        cls(4, init="zero")


def test_init_through_activation_strings():
    m = create_act("acon_c:init=swish", channels=5)
    assert isinstance(m, AconC) and m.init == "swish"
    assert "init='swish'" in repr(m)
    m = create_act("Meta-ACON:init=swish:r=8", channels=32)
    assert isinstance(m, MetaAcon) and m.init == "swish" and m.r == 8
    # keyword arguments win over options in the string
    assert create_act("acon_c:init=swish", channels=5, init="paper").init == "paper"
    with pytest.raises(ValueError, match="acon_c:inti=swish.*unexpected keyword"):
        create_act("acon_c:inti=swish", channels=5)
    with pytest.raises(ValueError, match="is not key=value"):
        create_act("acon_c:swish", channels=5)
