"""``act_layer``: any registry activation in the columns' ConvNeXt blocks, on their
channels-last tensors, with every memory mode still giving plain autograd's gradients."""

from __future__ import annotations

import pytest
import torch
from revcol_helpers import grads_of, image, make_model, max_rel_err
from torch import nn

import revact
from revact.activations.channels_last import ChannelsLast

MODES = [("column", None), ("full", None), ("full", 2)]


def _block_acts(model: nn.Module) -> list[nn.Module]:
    return [m.act for name, m in model.named_modules() if name.startswith("subnet")
            and type(m).__name__ == "ConvNeXtBlock"]


def test_default_is_official_gelu():
    model = make_model(2, inter_supv=False)
    acts = _block_acts(model)
    assert len(acts) == 2 * 4 and all(type(a) is nn.GELU and a.approximate == "none"
                                      for a in acts)
    assert not any(".act." in k for k in model.state_dict())


@pytest.mark.parametrize("act", ["dyrelu_b", "acon_c", "meta_acon"])
def test_channel_aware_acts_float64_gradients_equal_plain_autograd(act):
    x = image()
    ref = grads_of(make_model(3, memory="none", act_layer=act), x)
    for mode, keep in MODES:
        model = make_model(3, memory=mode, keep_every=keep, act_layer=act)
        # The floor: biases feeding Meta-ACON's BatchNorm have a gradient that is exactly
        # zero in theory (BN removes the mean), so both sides are rounding noise (~1e-17).
        assert max_rel_err(grads_of(model, x), ref, floor=1e-6) <= 1e-10, (act, mode, keep)


def test_channel_aware_acts_are_built_for_channels_last():
    model = make_model(2, act_layer="dyrelu_b")
    acts = _block_acts(model)
    assert len({id(a) for a in acts}) == len(acts)  # one instance per block
    for level in range(4):
        act = model.subnet1.get_submodule(f"level{level}.blocks.0.act")
        assert isinstance(act, ChannelsLast) and act.act.layout == "tokens"
        assert act.act.channels == 4 * 8 * 2**level  # the blocks' hidden width
    keys = model.state_dict().keys()
    assert "subnet1.level2.blocks.0.act.act.fc1.weight" in keys
    # Everything else keeps the official names.
    gelu_keys = make_model(2).state_dict().keys()
    assert {k for k in keys if ".act." not in k} == set(gelu_keys)


def test_class_and_published_builder_and_features_only():
    model = make_model(2, act_layer=revact.AconC, features_only=True)
    assert all(isinstance(a, ChannelsLast) for a in _block_acts(model))
    feats = model(image())
    sum(f.square().sum() for f in feats).backward()
    elementwise = make_model(2, act_layer=nn.SiLU)
    assert all(type(a) is nn.SiLU for a in _block_acts(elementwise))
    with torch.device("meta"):
        tiny = revact.revcol_tiny(act_layer="dyrelu_b", features_only=True)
    assert type(tiny.subnet3.level3.blocks[1].act.act).__name__ == "DyReLUB"


def test_decoders_keep_gelu():
    model = make_model(4, inter_supv=True, act_layer="acon_c")
    decoder_acts = [m for m in model.decoder_blocks.modules() if isinstance(m, ChannelsLast)]
    assert not decoder_acts
    assert any(isinstance(m, nn.GELU) for m in model.decoder_blocks.modules())
