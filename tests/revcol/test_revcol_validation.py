"""Arguments and input sizes are checked where they are given, with messages that say what
was expected and what was given (instead of raw torch errors, NaN or failures in forward)."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from revcol_helpers import CHANNELS, LAYERS, grads_of, image, make_model, max_rel_err

from revact.revcol import RevCol
from revact.revcol.blocks import DropPath


@pytest.mark.parametrize("size", [(31, 31), (31, 64), (64, 28)])
def test_small_input_names_the_minimum(size):
    model = make_model(2)
    h, w = size
    with pytest.raises(ValueError, match=f"at least 32x32 pixels .* got {h}x{w}; .*pad_small"):
        model(image(h, w))


def test_pad_small_inputs_zero_pads_to_32_centred():
    model = make_model(2, pad_small_inputs=True).eval()
    x = image(28, 30, requires_grad=False)
    with torch.no_grad():
        assert torch.equal(model(x), model(F.pad(x, (1, 1, 2, 2))))
        assert [f.shape[-1] for f in model.forward_features(x)] == [8, 4, 2, 1]
    # Reversible backward still gives plain autograd's gradients.
    x.requires_grad_(True)
    ref = grads_of(make_model(2, memory="none", pad_small_inputs=True), x)
    assert max_rel_err(grads_of(make_model(2, memory="full", pad_small_inputs=True), x),
                       ref) <= 1e-10


def test_pad_small_inputs_reconstructions_have_the_input_size():
    model = make_model(4, inter_supv=True, pad_small_inputs=True)
    x = image(28, requires_grad=False)
    logits, images = model(x)
    assert len(logits) == 4 and [tuple(i.shape) for i in images] == [(2, 3, 28, 28)] * 3


def _error(**kwargs) -> str:
    args = dict(channels=CHANNELS, layers=LAYERS, num_subnet=2) | kwargs
    with pytest.raises(ValueError) as e:
        RevCol(**args)
    return str(e.value)


@pytest.mark.parametrize("layers", [(1, 1, -1, 1), (1, 1, 1), (1, 1.5, 1, 1), 2])
def test_layers_are_four_non_negative_ints(layers):
    msg = _error(layers=layers)
    assert msg == f"layers must be four ints >= 0 (blocks, one per level), got {layers!r}"


def test_a_level_may_have_no_blocks_but_a_column_must():
    assert _error(layers=(0, 0, 0, 0)) == (
        "layers must give at least one block in total, got (0, 0, 0, 0)")
    # Fusion-only levels, as the official code allows (an empty nn.Sequential).
    sparse = RevCol(CHANNELS, (0, 1, 0, 1), 2, num_classes=10, memory="full")
    assert len(sparse.subnet1.level0.blocks) == 0
    x = image(32, dtype=torch.float32)
    sparse(x).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("channels", [(8, 0, 32, 64), (8, 16, -32, 64), (8.0, 16, 32, 64)])
def test_channels_are_four_positive_ints(channels):
    assert _error(channels=channels) == (
        f"channels must be four ints >= 1 (channels, one per level), got {channels!r}")


@pytest.mark.parametrize("name,value", [("num_classes", 0), ("num_classes", -3),
                                        ("in_chans", 0), ("num_subnet", 0),
                                        ("num_subnet", 2.0)])
def test_counts_are_positive_ints(name, value):
    assert _error(**{name: value}) == f"{name} must be an int >= 1, got {value!r}"


def test_num_classes_is_not_checked_without_a_head():
    model = RevCol(CHANNELS, LAYERS, 2, num_classes=0, features_only=True)
    assert not hasattr(model, "cls")


@pytest.mark.parametrize("k", [4, 0, -3, 3.0])
def test_kernel_size_must_be_odd(k):
    assert _error(kernel_size=k) == f"kernel_size must be a positive odd int, got {k!r}"


def test_odd_kernel_sizes_work():
    model = RevCol(CHANNELS, LAYERS, 2, kernel_size=5, num_classes=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_drop_path_in_zero_one(p):
    assert _error(drop_path=p) == f"drop_path must be in [0, 1), got {p!r}"


def test_drop_path_module_drops_everything_at_one_without_nan():
    x = torch.randn(4, 3, 2, 2)
    assert torch.equal(DropPath(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match=re.escape("drop probability must be in [0, 1], got 1.5")):
        DropPath(1.5)
