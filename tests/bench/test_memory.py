"""revact.bench.memory: the saved-for-backward figure the engine reports, checked by hand."""

import torch
from torch import nn

import revact
from revact.bench.memory import peak_step_mib, saved_tensor_bytes, saved_tensor_mib


def _net():
    return nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.ReLU())


def test_saved_bytes_by_hand():
    net, x = _net(), torch.randn(5, 8)
    # Linear keeps its input (5×8; not its weight: the input needs no gradient); BatchNorm
    # its input (5×4), running mean and variance, batch mean and inverse std (4 each) and
    # its weight, a parameter (4); ReLU its output (5×4); all float32.
    activations = 4 * (5 * 8 + 5 * 4 + 4 * 4 + 5 * 4)
    params = 4 * 4
    assert saved_tensor_bytes(net, x, parameters=False) == activations
    assert saved_tensor_bytes(net, x) == activations + params
    assert saved_tensor_mib(net, x) == activations / 2**20
    xg = torch.randn(4, 16, 10, 10, requires_grad=True)  # ACON-C: the input and p1, p2, β
    assert saved_tensor_bytes(revact.AconC(16), xg) == xg.nbytes + 3 * 16 * 4


def test_measuring_leaves_the_model_alone():
    net = _net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    saved_tensor_mib(net, torch.randn(5, 8) + 3)
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_peak_step_sees_a_temporary():
    def step():
        big = torch.ones(2**20)  # 4 MiB, freed before the step ends
        return float(big.sum())

    assert 3.9 < peak_step_mib(step) < 8


def test_what_each_activation_keeps_in_a_conv_block():
    """net_bench.md's explanation of the saved-memory ratios, as bytes: in a
    Conv-BN-act-Conv block an in-place ReLU keeps nothing the next convolution does not
    keep already, in-place ReLU6 keeps one more activation-sized tensor, and ACON-C keeps
    one (its input) like ReLU6."""
    x = torch.randn(8, 16, 32, 32)
    one = 8 * 32 * 32 * 32 * 4  # one (8, 32, 32, 32) float32 tensor

    def saved(act):
        block = nn.Sequential(nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), act,
                              nn.Conv2d(32, 16, 1))
        return saved_tensor_bytes(block, x, parameters=False)  # activations only

    relu = saved(nn.ReLU(inplace=True))
    assert saved(nn.ReLU6(inplace=True)) - relu == one
    assert saved(revact.AconC(32)) - relu == one
