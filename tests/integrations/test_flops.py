"""revact.count_flops: hand counts, every call counted once, thop and FlopCounterMode agree."""

import importlib

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import revact
from revact.activations.channels_last import ChannelsLast
from revact.cli import main
from revact.integrations.flops import count_flops, register_thop_rules, thop_custom_ops
from revact.integrations.swap import CallSites


def _dyrelu_hand_count(c: int, p: int, r: int, k: int, coeffs: int) -> tuple[int, int]:
    """(layer MACs, element-wise MACs) of one DY-ReLU call on one image, from the paper's
    formula: pooling C·P; FC1 C·C/R; FC2 (C/R)·2K·C'; per element K multiply-adds and K − 1
    maxima; per image ReLU on C/R hidden units and 4 per gate output (σ 2, 2g − 1, λ·+α)."""
    hidden = c // r
    layers = c * hidden + hidden * 2 * k * coeffs
    elementwise = c * p + (k + k - 1) * c * p + hidden + 4 * 2 * k * coeffs
    return layers, elementwise


@pytest.mark.parametrize("k", [2, 3])
def test_dyrelu_b_matches_hand_count(k):
    c, h, w, r = 16, 7, 5, 4
    report = count_flops(revact.DyReLUB(c, reduction=r, k=k), (c, h, w))
    layers, elementwise = _dyrelu_hand_count(c, h * w, r, k, coeffs=c)
    assert (report.layer_macs, report.act_macs) == (layers, elementwise)
    assert report.hyper_macs == layers  # both FCs are the activation's own
    assert report.macs == layers + elementwise
    assert report.flops == 2 * report.macs
    # k=2: 16·32 + 4·(64 + 4) = 784 layer MACs; 4·16·35 + 4 + 4·64 = 2500 element-wise.
    if k == 2:
        assert (layers, elementwise) == (16 * 4 + 4 * 64, 2500)


def test_dyrelu_a_c_and_tokens_layout():
    c, p, r = 8, 12, 4
    a = count_flops(revact.DyReLUA(c, reduction=r), (c, p))
    assert (a.layer_macs, a.act_macs) == _dyrelu_hand_count(c, p, r, 2, coeffs=1)
    # Tokens (N, L, C) count alike.
    t = count_flops(revact.DyReLUB(c, reduction=r, layout="tokens"), (p, c))
    assert (t.layer_macs, t.act_macs) == _dyrelu_hand_count(c, p, r, 2, coeffs=c)
    # DY-ReLU-C: + spatial projection C·P (a layer cost), softmax etc. 6·P, π scaling C·P.
    layers, elementwise = _dyrelu_hand_count(c, p, r, 2, coeffs=c)
    for layout, shape in (("channels_first", (c, p)), ("tokens", (p, c))):
        m = count_flops(revact.DyReLUC(c, reduction=r, layout=layout), shape)
        assert (m.layer_macs, m.act_macs) == (layers + c * p, elementwise + 6 * p + c * p)


def test_acon_and_meta_acon_hand_count():
    c, h, w = 32, 6, 6
    acon = count_flops(revact.AconC(c), (c, h, w))
    assert (acon.layer_macs, acon.act_macs) == (0, 5 * c * h * w)  # β·Δp·x, σ (2), fma, ·x
    assert count_flops(revact.AconB(c), (c, h, w)).act_macs == 5 * c * h * w
    assert count_flops(revact.AconA(c), (c, h, w)).act_macs == 4 * c * h * w
    meta = count_flops(revact.MetaAcon(c, r=16), (c, h, w))
    hidden = max(16, c // 16)
    assert meta.layer_macs == meta.hyper_macs == 2 * c * hidden  # functional FCs, counted once
    assert meta.act_macs == 6 * c * h * w + 3 * c  # + mean; σ and β·Δp per channel
    pixel = count_flops(revact.MetaAcon(c, generator="pixel"), (c, h, w))
    assert (pixel.layer_macs, pixel.act_macs) == (0, 8 * c * h * w)


def test_classic_rule_and_repeated_or_shared_calls():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), relu, nn.Conv2d(4, 4, 1), relu,
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    report = count_flops(net, (1, 8, 8))
    assert report.layer_macs == 4 * 64 * 9 + 4 * 64 * 4 + 256 * 10
    assert report.act_macs == 2 * 4 * 64  # one module, two calls
    row = next(r for r in report.rows if r.type == "ReLU")
    assert row.calls == 2
    assert "ReLU" in report.table() and "GFLOPs" in report.table()


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_swapped_torchvision_counts_every_call_site_once(name):
    model = torchvision.models.get_model(name)
    size = (3, 64, 64)
    base = count_flops(model, size)
    per_element = {"mobilenet_v2": 2, "resnet18": 1}[name]  # ReLU6, ReLU
    elements = base.act_macs / per_element
    revact.swap_activations(model, "acon_c", sample=torch.zeros(1, *size))
    if name == "resnet18":  # BasicBlock calls its ReLU twice: CallSites
        assert any(isinstance(m, CallSites) for m in model.modules())
    swapped = count_flops(model, size)
    assert swapped.layer_macs == base.layer_macs
    assert swapped.act_macs == 5 * elements


def test_swapped_mobilenet_v2_dyrelu_b_hyper_functions():
    model = torchvision.models.mobilenet_v2()
    revact.swap_activations(model, "dyrelu_b", sample=torch.zeros(1, 3, 64, 64))
    report = count_flops(model, (3, 64, 64))
    dyrelus = [m for m in model.modules() if isinstance(m, revact.DyReLUB)]
    assert report.hyper_macs == sum(m.fc1.weight.numel() + m.fc2.weight.numel() for m in dyrelus)
    # FlopCounterMode counts the FCs (as FLOPs) and no element-wise maths.
    with FlopCounterMode(display=False) as fcm, torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    assert fcm.get_total_flops() == 2 * report.layer_macs


def test_channels_last_wrapper_is_not_counted_twice():
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    revact.swap_activations(model, "dyrelu_b", sample=torch.zeros(1, 8))
    assert isinstance(model[1], ChannelsLast)
    report = count_flops(model, (8,))
    layers, elementwise = _dyrelu_hand_count(16, 1, 4, 2, coeffs=16)
    assert report.layer_macs == 8 * 16 + 16 * 4 + layers
    assert report.act_macs == elementwise


def test_timm_model():
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilenetv3_small_050")
    base = count_flops(model, (3, 64, 64))
    revact.swap_activations(model, "acon_c", sample=torch.zeros(1, 3, 64, 64))
    swapped = count_flops(model, (3, 64, 64))
    assert base.act_macs > 0 and swapped.act_macs > base.act_macs
    assert any(r.type == "AconC" for r in swapped.rows)
    assert any(r.type == "Hardsigmoid" for r in swapped.rows)  # SE gates kept and counted


@pytest.fixture
def stock_thop_rules(monkeypatch):
    """thop's own global rules: importing Ultralytics with revact adds revact's to them."""
    # Import it first, so that its registration cannot land in the table patched below.
    pytest.importorskip("ultralytics.nn.tasks")
    table = importlib.import_module("thop.profile")
    stock = {k: v for k, v in table.register_hooks.items()
             if not k.__module__.startswith("revact.")}
    monkeypatch.setattr(table, "register_hooks", stock)  # undone after the test


def test_thop_rules_give_the_same_totals(stock_thop_rules):
    thop = pytest.importorskip("thop")
    zero_ops = importlib.import_module("thop.profile").zero_ops
    x = torch.zeros(1, 3, 64, 64)
    for act in ("dyrelu_b", "dyrelu_c", "meta_acon"):
        model = torchvision.models.mobilenet_v2()
        revact.swap_activations(model, act, sample=x)
        ours = count_flops(model, (3, 64, 64))
        # Like for like: thop also counts BatchNorm, which revact folds into the conv.
        ops = thop_custom_ops() | {nn.BatchNorm2d: zero_ops}
        assert thop.profile(model, inputs=(x,), custom_ops=ops, verbose=False)[0] == ours.macs
        # Without the rules thop misses the activation maths, and DY-ReLU-C's spatial
        # projection (a multiply and a sum, no matrix product).
        plain = thop.profile(model, inputs=(x,), custom_ops={nn.BatchNorm2d: zero_ops},
                             verbose=False)[0]
        projections = sum(r.layer_macs for r in ours.rows if r.type == "DyReLUC")
        assert plain == ours.layer_macs - projections


def test_ultralytics_counts_and_registered_thop_rules(stock_thop_rules):
    pytest.importorskip("ultralytics")
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import get_flops

    from revact.integrations.ultralytics import model_cfg

    stock = DetectionModel("yolov8n.yaml", verbose=False)
    base = count_flops(stock, (3, 64, 64))
    silu = next(r for r in base.rows if r.type == "SiLU")  # Conv.default_act, one shared
    dyb = DetectionModel(model_cfg("yolov8n-dyrelu_b.yaml"), verbose=False)
    ours = count_flops(dyb, (3, 64, 64))
    assert silu.calls == sum(r.calls for r in ours.rows if r.type == "DyReLUB") > 50
    before = get_flops(dyb, 64)
    register_thop_rules()
    after = get_flops(dyb, 64)
    assert after - before == pytest.approx(2 * ours.act_macs / 1e9, rel=1e-9)
    assert get_flops(stock, 64) == pytest.approx(2 * (base.layer_macs + thop_bn(stock)) / 1e9)


def thop_bn(model: nn.Module) -> float:
    """What thop adds for BatchNorm and upsampling, which revact does not count."""
    thop = importlib.import_module("thop.profile")
    ops = {cls: thop.zero_ops for cls in (nn.Conv2d, nn.Linear)}
    return thop.profile(model, inputs=(torch.zeros(1, 3, 64, 64),), custom_ops=ops,
                        verbose=False)[0]


def test_cli(capsys):
    assert main(["flops", "mobilenet_v2", "--input", "3,64,64", "--act", "acon_c",
                 "--table"]) == 0
    out = capsys.readouterr().out
    assert "AconC" in out and "GFLOPs" in out and "features.18.2" in out
    assert main(["flops", "mbv2", "--input", "1,28,28"]) == 0
    assert "1x28x28" in capsys.readouterr().out
    assert main(["flops", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_a_batch_of_inputs_is_counted_per_image():
    # Issue "every bad input, round two": a batch of 2 reported twice one image's MACs.
    model = nn.Sequential(nn.Conv2d(3, 8, 3), revact.DyReLUB(8), nn.Flatten(), nn.Linear(288, 4))
    one = count_flops(model, (3, 8, 8))
    two = count_flops(model, inputs=torch.randn(2, 3, 8, 8))
    assert two.input_size == one.input_size == (3, 8, 8)
    assert two.as_dict() == pytest.approx(one.as_dict())
    assert [r.macs for r in two.rows] == pytest.approx([r.macs for r in one.rows])
    assert [r.calls for r in two.rows] == [r.calls for r in one.rows]
    assert count_flops(model, inputs=(torch.randn(3, 3, 8, 8),)).macs == pytest.approx(one.macs)


_CONV = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())


@pytest.mark.parametrize(("input_size", "error", "match"), [
    ((1, 3, 16, 16), ValueError, r"without the batch axis.*takes 4-D batches.*3 sizes per "
                                 r"image; got 4"),
    ((3, 16), ValueError, r"input_size=\(3, 16\).*takes 4-D batches.*got 2"),
    ((3, 0, 0), ValueError, r"every size at least 1; got \(3, 0, 0\)"),
    ((3.5, 16, 16), TypeError, r"in whole numbers; got \(3.5, 16, 16\)"),
    (torch.tensor([3, 16, 16]), TypeError, r"got a tensor \(pass a batch of images as inputs="),
    ("3,16,16", TypeError, r"e.g. \(3, 224, 224\); got str"),
    ((4, 16, 16), ValueError, r"takes 3 input channels, got 4"),
], ids=["batch-axis", "too-few", "zero", "float", "tensor", "str", "channels"])
def test_bad_input_size_is_refused_clearly(input_size, error, match):
    with pytest.raises(error, match=match):
        count_flops(_CONV, input_size)


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(TypeError, match="got list first"):
        count_flops(_CONV, inputs=([torch.zeros(1, 3, 8, 8)],))
    with pytest.raises(ValueError, match=r"at least one image; got a tensor of shape \(0, 3"):
        count_flops(_CONV, inputs=torch.zeros(0, 3, 8, 8))
    with pytest.raises(ValueError, match="exactly one of"):
        count_flops(_CONV)
    # The model's own complaint comes through, in one line.
    with pytest.raises(ValueError, match=r"Sequential failed on a batch of shape \(1, 3, 2, "
                                         r"2\).*RuntimeError: .*Kernel size can't be greater"):
        count_flops(_CONV, (3, 2, 2))
