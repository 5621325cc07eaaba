"""DY-ReLU A/B/C against a float64 NumPy formula written here."""

import numpy as np
import pytest
import torch

from revact import DyReLUA, DyReLUB, DyReLUC

CLASSES = {"a": DyReLUA, "b": DyReLUB, "c": DyReLUC}


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hard_sig(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def _reference(m, xn, tokens=False):
    """y = max_k(π·a_k·x + π·b_k), coefficients from the paper's hyper-function."""
    if tokens:  # (N, L, C) → (N, C, L): the formula below is channels-first
        xn = xn.transpose(0, 2, 1)
    n, c = xn.shape[:2]
    flat = xn.reshape(n, c, -1)
    w1, b1 = m.fc1.weight.detach().numpy(), m.fc1.bias.detach().numpy()
    w2, b2 = m.fc2.weight.detach().numpy(), m.fc2.bias.detach().numpy()
    theta = np.maximum(flat.mean(-1) @ w1.T + b1, 0) @ w2.T + b2
    gate = _sig(theta) if m.gate == "sigmoid" else _hard_sig(theta)
    residual = (2 * gate - 1).reshape(n, -1, 2 * m.k)
    alpha = np.zeros(m.k)
    alpha[0] = 1.0
    a = alpha + m.lambda_a * residual[..., : m.k]  # (N, C', K)
    b = m.lambda_b * residual[..., m.k :]
    pi = np.ones((n, 1, flat.shape[-1]))
    if isinstance(m, DyReLUC):
        w, bias = m.spatial.weight.detach().numpy()[0], m.spatial.bias.detach().numpy()[0]
        z = np.einsum("ncp,c->np", flat, w) + bias
        e = np.exp((z - z.max(1, keepdims=True)) / m.tau)
        soft = e / e.sum(1, keepdims=True)
        pi = np.minimum(m.gamma * flat.shape[-1] * soft, 1.0)[:, None, :]
    branches = [pi * (a[..., k, None] * flat + b[..., k, None]) for k in range(m.k)]
    y = np.max(np.stack(branches), axis=0).reshape(xn.shape)
    return y.transpose(0, 2, 1) if tokens else y


def _randomise(m, rng, scale=1.0):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=rng, dtype=p.dtype) * scale)
    return m


LAYOUTS = [("channels_first", (3, 8, 13)), ("channels_first", (2, 8, 5, 7)), ("tokens", (3, 11, 8))]


@pytest.mark.parametrize("variant", sorted(CLASSES))
@pytest.mark.parametrize(("layout", "shape"), LAYOUTS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_matches_float64_formula(variant, layout, shape, k, rng):
    m = _randomise(CLASSES[variant](8, reduction=2, k=k, layout=layout).double(), rng)
    x = torch.randn(shape, dtype=torch.float64, generator=rng) * 2
    expected = _reference(m, x.numpy(), tokens=layout == "tokens")
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", sorted(CLASSES))
def test_hard_sigmoid_gate(variant, rng):
    m = _randomise(CLASSES[variant](8, gate="hard_sigmoid").double(), rng, 0.3)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, generator=rng)
    np.testing.assert_allclose(m(x).detach().numpy(), _reference(m, x.numpy()), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("variant", sorted(CLASSES))
@pytest.mark.parametrize(("layout", "shape"), LAYOUTS)
def test_gradcheck(variant, layout, shape, rng, gradcheck_module):
    m = _randomise(CLASSES[variant](8, reduction=2, k=2, layout=layout).double(), rng)
    x = torch.randn(shape, dtype=torch.float64, generator=rng)
    assert gradcheck_module(m, x)


@pytest.mark.parametrize(("variant", "coeff_channels"), [("a", 1), ("b", 8), ("c", 8)])
def test_coefficients_shape_and_normalisation(variant, coeff_channels, rng):
    m = CLASSES[variant](8, k=3)
    x = torch.randn(4, 8, 6, 6, generator=rng)
    a, b = m.coefficients(x)
    assert a.shape == b.shape == (4, coeff_channels, 3)
    # a = α + λa·Δa with Δa in [-1, 1]: a_1 in [0, 2], a_k in [-1, 1]; b in [-0.5, 0.5].
    assert (a[..., 0] >= 0).all() and (a[..., 0] <= 2).all()
    assert a[..., 1:].abs().max() <= 1 and b.abs().max() <= 0.5


def test_spatial_attention_shape_range_and_sharing(rng):
    m = DyReLUC(16)
    x = torch.randn(3, 16, 9, 11, generator=rng)
    pi = m.spatial_attention(x)
    assert pi.shape == (3, 1, 9, 11)
    assert pi.min() >= 0 and pi.max() <= 1
    tokens = DyReLUC(16, layout="tokens")
    assert tokens.spatial_attention(torch.randn(2, 7, 16, generator=rng)).shape == (2, 1, 7)


def test_c_softmax_runs_over_all_positions(rng):
    # 28×28 = 784 positions with C = 128 channels: 784 is not divisible by 128, so the
    # seed's per-chunk softmax (view(N, C, -1)) crashes here. Over all positions, the
    # unclamped map γ·HW·softmax has mean γ exactly, and raising one position's logit
    # lowers the attention everywhere else.
    m = DyReLUC(128, tau=10.0, gamma=1 / 3).double()
    with torch.no_grad():
        m.spatial.weight.mul_(0.1)
    x = torch.randn(2, 128, 28, 28, dtype=torch.float64, generator=rng)
    z = m._spatial_logits(x)
    soft = torch.softmax(z / m.tau, dim=1)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, dtype=torch.float64))
    pi = m.spatial_attention(x)
    torch.testing.assert_close(pi.flatten(1), (784 / 3 * soft).clamp(max=1))
    np.testing.assert_allclose(m(x).detach().numpy(), _reference(m, x.numpy()), rtol=1e-10,
                               atol=1e-12)
    # One logit up → every other position's attention goes down (shared normaliser).
    with torch.no_grad():
        m.spatial.bias.zero_()
    probe = x.clone()
    probe[0, :, 0, 0] += 50 * m.spatial.weight[0] / m.spatial.weight.norm() ** 2
    before, after = m.spatial_attention(x)[0, 0], m.spatial_attention(probe)[0, 0]
    unclamped = before.flatten()[1:] < 1
    assert (after.flatten()[1:][unclamped] < before.flatten()[1:][unclamped]).all()


@pytest.mark.parametrize("variant", sorted(CLASSES))
@pytest.mark.parametrize(("layout", "shape"), LAYOUTS)
def test_relu_init_is_exactly_relu(variant, layout, shape, rng):
    m = CLASSES[variant](8, layout=layout, relu_init=True)
    x = torch.randn(shape, generator=rng) * 3
    assert torch.equal(m(x), torch.relu(x))


@pytest.mark.parametrize("variant", sorted(CLASSES))
def test_1d_and_2d_agree(variant, rng):
    # (N, C, H, W) and its flattened (N, C, H·W) view pool over the same positions.
    m = _randomise(CLASSES[variant](8).double(), rng)
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64, generator=rng)
    torch.testing.assert_close(m(x).flatten(2), m(x.flatten(2)))


def test_residual_ranges_can_be_changed_after_construction(rng):
    """λ_a and λ_b are folded into the coefficient map at construction; setting them
    later rebuilds it (the formula reads the new values)."""
    m = DyReLUB(6).double()
    m.lambda_a, m.lambda_b = 0.7, 0.2
    x = torch.randn(2, 6, 5, 5, generator=rng, dtype=torch.float64)
    with torch.no_grad():
        y = m(x).numpy()
    np.testing.assert_allclose(y, _reference(m, x.numpy()), rtol=1e-10, atol=1e-12)


def test_ranges_are_floats_and_coefficient_maps_derived_on_use(rng):
    """λ are Python floats; offset and slope are no buffers (no _apply override), built
    once per dtype/device, float64-exact after .double(), and old pickles still load."""
    import io

    m = DyReLUB(6, lambda_a=0.7, lambda_b=0.3)
    assert type(m)._apply is torch.nn.Module._apply
    assert isinstance(m.lambda_a, float) and isinstance(m.lambda_b, float)
    assert dict(m.named_buffers()) == {} and set(m.state_dict()) == {
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    cpu = torch.device("cpu")
    offset, slope = m._affine_map(torch.float32, cpu)
    assert m._affine_map(torch.float32, cpu)[0] is offset  # cached: no per-call cost
    assert offset.dtype == torch.float32
    # Laid out as the hyper-function's output: (C', 2, K) flat, here C' = 6, K = 2.
    torch.testing.assert_close(offset, torch.tensor([[0.3, -0.7], [-0.3, -0.3]]).repeat(6, 1, 1)
                               .flatten())
    torch.testing.assert_close(slope, torch.tensor([[1.4, 1.4], [0.6, 0.6]]).repeat(6, 1, 1)
                               .flatten())
    d = _randomise(m.double(), rng)
    offset64, _ = d._affine_map(torch.float64, cpu)
    assert offset64.dtype == torch.float64 and offset64[0].item() == 1.0 - 0.7  # exact
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64, generator=rng)
    np.testing.assert_allclose(d(x).detach().numpy(), _reference(d, x.numpy()), rtol=1e-10,
                               atol=1e-12)
    with torch.device("meta"):  # building without memory, as the RevCol tests do
        meta = DyReLUB(6)
    assert meta._affine_map(torch.float32, torch.device("meta"))[0].device.type == "meta"
    # A module pickled when offset and slope were non-persistent buffers.
    old = DyReLUB(6).double()
    del old.__dict__["_affine_cache"]
    old.register_buffer("_offset", torch.zeros(2, 2), persistent=False)
    old.register_buffer("_slope", torch.zeros(2, 1), persistent=False)
    buf = io.BytesIO()
    torch.save(old, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert dict(loaded.named_buffers()) == {}
    np.testing.assert_allclose(loaded(x).detach().numpy(), _reference(loaded, x.numpy()),
                               rtol=1e-10, atol=1e-12)
