"""create_act / list_acts / get_act_layer, and every bad input of the adaptive modules."""

import pytest
import torch
from torch import nn

import revact
from revact import create_act, get_act_layer, list_acts

REQUIRED = [
    "sigmoid", "logsigmoid", "tanh", "relu", "relu6", "leaky_relu", "prelu", "elu", "softplus",
    "silu", "swish", "mish", "gelu", "gelu_tanh", "hard_swish", "hard_sigmoid", "acon_a",
    "acon_b", "acon_c", "meta_acon", "dyrelu_a", "dyrelu_b", "dyrelu_c",
]
CHANNEL_AWARE = ["acon_a", "acon_b", "acon_c", "meta_acon", "dyrelu_a", "dyrelu_b", "dyrelu_c"]


def test_every_required_name_is_registered():
    assert set(REQUIRED) <= set(list_acts())
    assert set(list_acts("dyrelu")) == {"dyrelu_a", "dyrelu_b", "dyrelu_c"}


@pytest.mark.parametrize("name", REQUIRED)
def test_builds_by_name_and_runs(name):
    m = create_act(name, channels=6)
    x = torch.randn(2, 6, 5, 5)
    assert m(x).shape == x.shape


def test_names_are_case_and_dash_insensitive():
    assert isinstance(create_act("DyReLU-B", channels=4), revact.DyReLUB)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [(revact.AconC, revact.AconC), (revact.DyReLUC, revact.DyReLUC), (nn.ReLU, nn.ReLU)],
)
def test_builds_by_class(cls, expected):
    assert type(create_act(cls, channels=4)) is expected


def test_unregistered_class_gets_channels_when_it_takes_them():
    class Custom(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.channels = channels

    assert create_act(Custom, channels=9).channels == 9


def test_get_act_layer_is_a_factory():
    factory = get_act_layer("acon_c")
    assert isinstance(factory(channels=3), revact.AconC)
    assert isinstance(get_act_layer(nn.SiLU)(), nn.SiLU)


def test_kwargs_reach_the_constructor():
    m = create_act("dyrelu_b", channels=16, reduction=8, k=3)
    assert (m.reduction, m.k) == (8, 3)
    assert create_act("leaky_relu", negative_slope=0.2).negative_slope == 0.2


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="dyrelu_b") as err:
        create_act("dyrelub")
    assert "Known:" in str(err.value)


@pytest.mark.parametrize("name", CHANNEL_AWARE)
def test_channel_aware_without_channels_says_so(name):
    with pytest.raises(ValueError, match="channel-aware.*channels="):
        create_act(name)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_bad_channel_count(bad):
    with pytest.raises(ValueError, match="channels"):
        create_act("acon_c", channels=bad)


def test_not_a_name_or_class():
    with pytest.raises(TypeError, match="name or an nn.Module subclass"):
        create_act(nn.ReLU())


@pytest.mark.parametrize("name", CHANNEL_AWARE)
def test_wrong_channel_count_names_expected_and_given(name):
    m = create_act(name, channels=8)
    with pytest.raises(ValueError, match=r"built for 8 channels but the input has 5"):
        m(torch.randn(2, 5, 4, 4))


@pytest.mark.parametrize("name", CHANNEL_AWARE)
@pytest.mark.parametrize("shape", [(8,), (2, 8), (1, 8, 2, 2, 2)])
def test_wrong_rank_names_expected_and_given(name, shape):
    m = create_act(name, channels=8)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, L\) or \(N, C, H, W\)"):
        m(torch.randn(shape))


@pytest.mark.parametrize("name", ["dyrelu_a", "dyrelu_b", "dyrelu_c"])
def test_tokens_layout_errors(name):
    m = create_act(name, channels=8, layout="tokens")
    with pytest.raises(ValueError, match=r"\(N, L, C\)"):
        m(torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match="built for 8 channels but the input has 4"):
        m(torch.randn(2, 8, 4))


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("dyrelu_b", {"layout": "nhwc"}, "layout must be one of"),
        ("dyrelu_b", {"k": 0}, "k"),
        ("dyrelu_b", {"gate": "tanh"}, "gate must be one of"),
        ("dyrelu_c", {"tau": 0}, "tau must be positive"),
        ("meta_acon", {"generator": "spatial"}, "generator must be one of"),
        ("swish", {"learnable": "pixel"}, "learnable must be"),
    ],
)
def test_bad_options(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_act(name, channels=8, **kwargs)


def test_per_channel_swish_needs_channels():
    with pytest.raises(ValueError, match="channels"):
        revact.Swish(learnable="channel")


@pytest.mark.parametrize("name", [*CHANNEL_AWARE, "swish"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_input_is_refused_naming_the_dtype(name, dtype):
    # Issue 11: an integer tensor came back truncated (AconC gave [3, 1, 0, 2]); torch's
    # SiLU/GELU refuse such input too.
    m = create_act(name, channels=4).eval()
    x = torch.tensor([[[-3], [-1], [1], [3]]]).to(dtype)
    with pytest.raises(TypeError, match=rf"floating-point tensor.*{dtype}"):
        m(x)


def test_integer_input_is_refused_by_every_swish_and_the_kernels():
    from revact.activations.functional import acon, max_affine

    x = torch.arange(-2, 2).view(1, 4, 1)
    for m in (revact.Swish(), revact.Swish(beta=2.0), revact.Swish(learnable="scalar"),
              revact.Swish(learnable="channel", channels=4)):
        with pytest.raises(TypeError, match="floating-point tensor"):
            m(x)
    one = torch.ones(())
    with pytest.raises(TypeError, match="acon expects a floating-point tensor"):
        acon(x, one, one, one)
    with pytest.raises(TypeError, match="max_affine expects a floating-point tensor"):
        max_affine(x, torch.ones(1, 4, 1, 2), torch.ones(1, 4, 1, 2))
