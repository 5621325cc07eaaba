"""Every classic activation against a float64 NumPy formula written here."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from revact import Swish, create_act


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


_erf = np.vectorize(math.erf)

REFERENCES = {
    "sigmoid": _sig,
    "logsigmoid": lambda x: -_softplus(-x),
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "prelu": lambda x: np.where(x > 0, x, 0.25 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1.0),
    "softplus": _softplus,
    "silu": lambda x: x * _sig(x),
    "swish": lambda x: x * _sig(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "hard_swish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_float64_formula(name, rng):
    x = torch.randn(4, 6, 9, 7, dtype=torch.float64, generator=rng) * 4
    module = create_act(name).double()
    expected = REFERENCES[name](x.numpy())
    np.testing.assert_allclose(module(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_mish_applies_tanh_once():
    # Seed 003's mish applied tanh twice: tanh(tanh(softplus(x))). At x = 2 the two differ.
    x = torch.tensor([2.0], dtype=torch.float64)
    once = 2.0 * math.tanh(math.log1p(math.exp(2.0)))
    assert create_act("mish")(x).item() == pytest.approx(once, rel=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.5])
def test_fixed_swish_beta(beta, rng):
    x = torch.randn(100, dtype=torch.float64, generator=rng) * 5
    expected = x.numpy() * _sig(beta * x.numpy())
    np.testing.assert_allclose(Swish(beta=beta)(x).numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("learnable", ["scalar", "channel"])
def test_learnable_swish(learnable, rng):
    m = Swish(beta=1.0, learnable=learnable, channels=5).double()
    with torch.no_grad():
        m.beta.copy_(torch.rand(m.beta.shape, generator=rng, dtype=torch.float64) * 3)
    x = torch.randn(3, 5, 8, dtype=torch.float64, generator=rng)
    beta = m.beta.detach().numpy().reshape(-1)[None, :, None] if learnable == "channel" else (
        m.beta.item())
    expected = x.numpy() * _sig(beta * x.numpy())
    np.testing.assert_allclose(m(x).detach().numpy(), expected, rtol=1e-12)
    assert torch.autograd.gradcheck(m, (x.requires_grad_(),))


def test_registry_reuses_torch_nn():
    assert type(create_act("relu")) is nn.ReLU
    assert type(create_act("silu")) is nn.SiLU
    assert create_act("gelu_tanh").approximate == "tanh"
    assert create_act("gelu").approximate == "none"
    assert create_act("prelu", channels=7).weight.shape == (7,)
    assert create_act(nn.GELU).approximate == "none"
