"""Reference networks: the activation is used everywhere, shapes, registry, MAC counting."""

import pytest
import torch
from torch import nn

from revact import create_act
from revact.bench.memory import saved_tensor_mib
from revact.integrations.flops import count_macs
from revact.models import create_model, list_models


@pytest.mark.parametrize("name", ["mbv2", "mbv2_tiny", "resnet8", "resnet14"])
@pytest.mark.parametrize("act", ["relu", "acon_c", "dyrelu_c"])
def test_forward_and_backward(name, act):
    torch.manual_seed(0)
    m = create_model(name, act_layer=act, num_classes=7, in_chans=3)
    x = torch.randn(2, 3, 28, 28)
    y = m(x)
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["mbv2", "resnet8"])
def test_act_layer_replaces_every_activation(name):
    relu_net = create_model(name, act_layer="relu")
    n_relu = sum(isinstance(m, nn.ReLU) for m in relu_net.modules())
    dy = create_model(name, act_layer="dyrelu_b")
    dys = [m for m in dy.modules() if type(m).__name__ == "DyReLUB"]
    assert n_relu > 5 and len(dys) == n_relu
    assert not any(isinstance(m, nn.ReLU) for m in dy.modules())
    # One instance per layer: adaptive activations must not share parameters.
    assert len({id(m) for m in dys}) == len(dys)
    # A class and a factory work as well as a name.
    by_class = create_model(name, act_layer=nn.SiLU)
    by_factory = create_model(name, act_layer=lambda channels: create_act("acon_c", channels))
    assert sum(isinstance(m, nn.SiLU) for m in by_class.modules()) == n_relu
    assert sum(type(m).__name__ == "AconC" for m in by_factory.modules()) == n_relu


def test_same_seed_same_backbone_weights():
    torch.manual_seed(3)
    a = create_model("mbv2", act_layer="relu").state_dict()
    torch.manual_seed(3)
    b = create_model("mbv2", act_layer="silu").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        create_model("mbv3")
    assert "mbv2" in str(e.value) and "resnet8" in str(e.value)
    assert {"mbv2", "resnet8"} <= set(list_models())


def test_mac_counter_rule():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 10))
    c = count_macs(net, (1, 8, 8))
    assert c["layer_macs"] == 4 * 64 * 9 + 256 * 10
    assert c["act_macs"] == 4 * 64 * 1
    # Adaptive activations cost more: elementwise maths plus their hyper-functions.
    base = count_macs(create_model("mbv2", act_layer="relu"), (1, 28, 28))
    dyb = count_macs(create_model("mbv2", act_layer="dyrelu_b"), (1, 28, 28))
    assert dyb["layer_macs"] > base["layer_macs"] and dyb["act_macs"] > base["act_macs"]


def test_saved_tensor_measure_leaves_model_untouched():
    m = create_model("mbv2_tiny", act_layer="relu")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    mib = saved_tensor_mib(m, torch.randn(8, 1, 28, 28))
    assert mib > 0
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
