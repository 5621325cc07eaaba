import torch
from torch import nn

import revact


def test_activation_parameters_get_no_weight_decay():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), revact.AconC(8), revact.MetaAcon(8),
        revact.Swish(learnable=True, channels=8), revact.DyReLUB(8), nn.Flatten(),
        nn.Linear(8, 4),
    )
    model[0].bias.requires_grad_(False)  # frozen parameters are left out
    groups = revact.param_groups(model, weight_decay=0.05)
    decay = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[i] for i in decay)
    assert decayed == ["0.weight", "3.fc1.weight", "3.fc2.weight", "5.fc1.weight",
                       "5.fc2.weight", "7.weight"]
    no_decay = {names[id(p)] for p in groups[1]["params"]}
    assert {"2.p1", "2.p2", "2.beta", "3.p1", "3.p2", "4.beta", "1.weight"} <= no_decay
    assert "0.bias" not in no_decay
    torch.optim.SGD(groups, lr=0.1)  # accepted as is


def test_empty_groups_are_dropped():
    groups = revact.param_groups(nn.BatchNorm2d(4), weight_decay=0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
