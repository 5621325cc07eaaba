"""Precise BatchNorm against statistics computed directly in float64."""

import pytest
import torch
from torch import nn

from revact.train.precise_bn import precise_bn


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 5, 1), nn.BatchNorm2d(5), nn.Flatten(), nn.Linear(5 * 6 * 6, 2),
        nn.BatchNorm1d(2),
    ).double()


def _direct_stats(net, batches):
    """Each BatchNorm's inputs over all batches, by running the layers by hand in float64
    (BatchNorm normalising with each batch's own statistics, as in training)."""
    conv1, bn1, _, conv2, bn2, _, fc, bn3 = net
    seen = {bn1: [], bn2: [], bn3: []}

    def train_bn(bn, t, dims):
        seen[bn].append(t.transpose(0, 1).reshape(t.shape[1], -1))
        mean = t.mean(dims, keepdim=True)
        var = t.var(dims, unbiased=False, keepdim=True)
        shape = [1, -1] + [1] * (t.dim() - 2)
        return (t - mean) / (var + bn.eps).sqrt() * bn.weight.view(shape) + bn.bias.view(shape)

    with torch.no_grad():
        for x in batches:
            h = train_bn(bn1, conv1(x), (0, 2, 3)).relu()
            h = train_bn(bn2, conv2(h), (0, 2, 3))
            train_bn(bn3, fc(h.flatten(1)), (0,))
    return {bn: (torch.cat(v, 1).mean(1), torch.cat(v, 1).var(1)) for bn, v in seen.items()}


def test_sets_the_training_data_statistics(rng):
    net = _net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.weight.uniform_(0.5, 2.0, generator=rng)
                m.bias.normal_(generator=rng)
    batches = [torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=rng) * 2 + 0.5
               for _ in range(4)]
    expected = _direct_stats(net, batches)
    net.eval()
    net[4].train()  # a mixed mode, to see it restored
    tracked = [m.num_batches_tracked.clone() for m in (net[1], net[4], net[7])]
    rng_before = torch.get_rng_state()
    assert precise_bn(net, batches) == 3
    for bn in (net[1], net[4], net[7]):
        mean, var = expected[bn]
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-10, atol=1e-12)
    assert [m.training for m in net] == [False] * 4 + [True] + [False] * 3
    assert not net.training
    assert [m.num_batches_tracked for m in (net[1], net[4], net[7])] == tracked
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_all_reduce_combines_shards(rng):
    """Two shards summed through ``all_reduce`` give the statistics of all the images."""
    net = _net()
    batches = [torch.randn(4, 3, 8, 8, dtype=torch.float64, generator=rng) for _ in range(2)]
    whole = _net()
    whole.load_state_dict(net.state_dict())
    precise_bn(whole, batches)
    shard = {}

    def remember(t):
        shard.setdefault("other", []).append(t.clone())

    precise_bn(net, batches[1:], all_reduce=remember)  # what the other rank would send
    sent = iter(shard["other"])
    precise_bn(net, batches[:1], all_reduce=lambda t: t.add_(next(sent)))
    for a, b in zip(net.modules(), whole.modules(), strict=True):
        if isinstance(a, nn.BatchNorm2d | nn.BatchNorm1d):
            torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-12, atol=1e-14)


def test_no_batchnorm_and_too_little_data():
    assert precise_bn(nn.Linear(2, 2), [torch.randn(3, 2)]) == 0
    with pytest.raises(ValueError, match="at least 2"):
        precise_bn(nn.BatchNorm1d(3), [torch.randn(1, 3)][:0])
