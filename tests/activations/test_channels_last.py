"""Channel-aware activations on channels-last input, against float64 formulas written here."""

import numpy as np
import pytest
import torch
from torch import nn

from revact.activations.channels_last import ChannelsLast, create_channels_last_act


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("shape", [(3, 6), (2, 5, 6), (2, 4, 3, 6)])
def test_acon_c_channels_last_matches_formula(shape, rng):
    act = create_channels_last_act("acon_c", channels=6).double()
    assert isinstance(act, ChannelsLast)
    x = torch.randn(shape, dtype=torch.float64, generator=rng) * 3
    p1, p2, beta = (getattr(act.act, n).detach().numpy().reshape(-1) for n in ("p1", "p2", "beta"))
    xn = x.numpy()  # channels on the last axis broadcast against the (C,) parameters
    d = (p1 - p2) * xn
    expected = d * _sig(beta * d) + p2 * xn
    np.testing.assert_allclose(act(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_dyrelu_b_channels_last_pools_over_every_position(rng):
    act = create_channels_last_act("dyrelu_b", channels=6).double()
    assert act.act.layout == "tokens"
    with torch.no_grad():
        for p in act.parameters():
            p.copy_(torch.randn(p.shape, generator=rng, dtype=p.dtype))
    x = torch.randn(2, 4, 3, 6, dtype=torch.float64, generator=rng)
    xn = x.numpy()
    pooled = xn.mean(axis=(1, 2))                                      # (N, C)
    fc1, fc2 = act.act.fc1, act.act.fc2
    hidden = np.maximum(pooled @ fc1.weight.detach().numpy().T + fc1.bias.detach().numpy(), 0)
    theta = hidden @ fc2.weight.detach().numpy().T + fc2.bias.detach().numpy()
    res = (2 * _sig(theta) - 1).reshape(2, 6, 4)                       # (N, C, 2K)
    a = np.array([1.0, 0.0]) + res[..., :2]
    b = 0.5 * res[..., 2:]
    pieces = xn[..., None] * a[:, None, None] + b[:, None, None]       # (N, H, W, C, K)
    np.testing.assert_allclose(act(x).detach().numpy(), pieces.max(-1), rtol=1e-12, atol=1e-13)


def test_elementwise_activations_are_not_wrapped():
    assert isinstance(create_channels_last_act("gelu", channels=8), nn.GELU)
    assert isinstance(create_channels_last_act("swish", channels=8), ChannelsLast)  # β per channel


def test_rejects_scalars():
    with pytest.raises(ValueError, match=r"\(N, \.\.\., C\)"):
        ChannelsLast(nn.ReLU())(torch.ones(3))
