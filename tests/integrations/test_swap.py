"""swap_activations on real torchvision, timm and Ultralytics models, and its errors."""

import copy
import io
import os
import sys
import threading

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported anywhere

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.ops.misc import Conv2dNormActivation, Permute

import revact
from revact.activations.channels_last import ChannelsLast
from revact.integrations.swap import _RUNNING, CallSites, SwapReport, swap_activations


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _new_acts(model, cls=nn.Module):
    """The revact activations in ``model``, by identity (CallSites and wrappers excluded)."""
    return [m for m in model.modules()
            if isinstance(m, cls) and type(m).__module__.startswith("revact.activations")
            and not isinstance(m, ChannelsLast)]


# ----------------------------------------------------------------------------- torchvision


def test_resnet50_every_call_site_gets_its_own_activation():
    model = torchvision.models.resnet50()
    report = swap_activations(model, "acon_c")

    # Expectation from the architecture: the stem ReLU follows conv1; a Bottleneck calls its
    # one ReLU after bn1, bn2 and after the residual sum, i.e. on conv1/conv2/conv3 outputs.
    expected = {"relu": [model.conv1.out_channels]}
    for name, block in model.named_modules():
        if isinstance(block, torchvision.models.resnet.Bottleneck):
            expected[f"{name}.relu"] = [block.conv1.out_channels, block.conv2.out_channels,
                                        block.conv3.out_channels]
    assert sum(map(len, expected.values())) == 49 and len(expected) == 17
    assert len(report) == 49 and report.modules == 17

    got = {}
    for path in expected:
        swapped = model.get_submodule(path)
        sites = swapped.sites if isinstance(swapped, CallSites) else [swapped]
        assert all(isinstance(s, revact.AconC) for s in sites)
        got[path] = [s.channels for s in sites]
    assert got == expected
    assert len({id(row.module) for row in report}) == 49
    assert len(_new_acts(model)) == 49
    for row in report:
        assert model.get_submodule(row.path) is row.module
        assert row.old == "ReLU(inplace=True)" and row.new == "AconC" and row.axis == 1

    model.train()
    model(_x(2, 3, 64, 64)).logsumexp(1).sum().backward()
    assert all(s.p1.grad is not None for s in _new_acts(model))


@pytest.mark.parametrize("act", ["dyrelu_b", "dyrelu_c"])
def test_relu_init_keeps_resnet18_outputs(act):
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = _x(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    report = swap_activations(model, act, relu_init=True)
    assert len(report) == 17  # 1 stem + 8 BasicBlocks × 2 calls
    with torch.no_grad():
        after = model(x)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_train_eval_modes_are_kept():
    model = torchvision.models.resnet18()
    model.layer1.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    swap_activations(model, "acon_c")
    for name, training in modes.items():
        assert model.get_submodule(name).training is training, name
    assert all(s.training for s in model.layer2.modules())
    assert not any(s.training for s in model.layer1.modules())


def test_mobilenet_v2_relu6_to_acon_c():
    model = torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10)
    expected = [blk[0].out_channels for blk in model.modules()
                if isinstance(blk, Conv2dNormActivation) and isinstance(blk[2], nn.ReLU6)]
    report = swap_activations(model, "acon_c")
    assert [row.channels for row in report] == expected
    assert not any(isinstance(m, nn.ReLU6) for m in model.modules())
    model(_x(2, 3, 64, 64)).sum().backward()


def test_convnext_gelu_after_linear_goes_channels_last():
    # torchvision's CNBlock: dwconv → Permute → LayerNorm → Linear(C, 4C) → GELU on (N,H,W,4C)
    model = ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 1)], num_classes=10)
    report = swap_activations(model, "dyrelu_b")
    assert [row.channels for row in report] == [64, 64, 128]
    assert all(row.axis == -1 and row.new == "ChannelsLast(DyReLUB)" for row in report)
    for row in report:
        assert row.module.act.layout == "tokens"
    model(_x(2, 3, 64, 64)).sum().backward()


def test_channel_axis_follows_the_producing_module():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 1), torchvision.models.convnext.LayerNorm2d(8), nn.ReLU(),  # NCHW
        Permute([0, 2, 3, 1]), nn.Linear(8, 6), nn.GELU(), nn.Dropout(), nn.ReLU(),  # NHWC
        Permute([0, 3, 1, 2]), nn.ReLU(),                                            # NCHW
    )
    report = swap_activations(model, "acon_c")
    assert [(r.path, r.channels, r.axis) for r in report] == [
        ("2", 8, 1), ("5", 6, -1), ("7", 6, -1), ("9", 6, 1)]
    assert model(_x(2, 3, 5, 7)).shape == (2, 6, 5, 7)


# ----------------------------------------------------------------------------- timm


def test_timm_mobilenetv3_leaves_gates_alone():
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10)
    gates = [n for n, m in model.named_modules() if isinstance(m, nn.Hardsigmoid)]
    acts = [n for n, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.Hardswish))]
    report = swap_activations(model, "acon_c")
    assert len(report) == len(acts) and len(report) > 10
    assert [n for n, m in model.named_modules() if isinstance(m, nn.Hardsigmoid)] == gates
    assert not any(isinstance(m, (nn.ReLU, nn.Hardswish)) for m in model.modules())
    model(_x(2, 3, 64, 64)).sum().backward()


def test_timm_vit_mlp_tokens_and_user_sample():
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2,
                              num_classes=10).eval()
    with pytest.raises(ValueError, match="sample"):  # the default 64×64 does not fit img_size
        swap_activations(model, "acon_c")
    report = swap_activations(model, "acon_c", sample=_x(1, 3, 32, 32))
    assert [(row.channels, row.axis) for row in report] == [(768, -1), (768, -1)]
    assert model(_x(2, 3, 32, 32)).shape == (2, 10)


# ----------------------------------------------------------------------------- Ultralytics


@pytest.fixture(scope="module")
def _yolo():
    pytest.importorskip("ultralytics")
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolov8n.yaml", nc=3, verbose=False)


@pytest.fixture
def yolo(_yolo):
    return copy.deepcopy(_yolo)


def _convs(model):
    from ultralytics.nn.modules import Conv

    return [m for m in model.modules() if type(m) is Conv]


def test_yolo_shared_silu_becomes_one_activation_per_conv(yolo):
    from ultralytics.nn.modules import Conv

    convs = _convs(yolo)
    shared, default = convs[0].act, Conv.default_act
    assert all(c.act is shared for c in convs)  # the premise: one SiLU, many parents
    fresh = copy.deepcopy(yolo)

    report = swap_activations(yolo, "acon_c")
    assert len(report) == len(convs) == report.modules
    assert all(isinstance(c.act, revact.AconC) for c in convs)
    assert [c.act.channels for c in convs] == [c.conv.out_channels for c in convs]
    assert len({id(c.act) for c in convs}) == len(convs)
    assert Conv.default_act is default and isinstance(default, nn.SiLU)

    yolo.train()
    opt = torch.optim.SGD(yolo.parameters(), lr=1e-3)
    preds = yolo(_x(2, 3, 64, 64))
    loss = sum(t.float().mean() for t in preds.values() if isinstance(t, torch.Tensor))
    loss.backward()
    opt.step()
    assert all(c.act.p1.grad is not None for c in convs)

    # EMA copies, checkpoints and state_dict loading into a freshly swapped model.
    yolo.eval()
    x = _x(1, 3, 64, 64, seed=1)
    with torch.no_grad():
        ref = yolo(x)[0]
        assert ref.isfinite().all()
        buf = io.BytesIO()
        torch.save(yolo, buf)
        buf.seek(0)
        assert torch.equal(torch.load(buf, weights_only=False)(x)[0], ref)
        assert torch.equal(copy.deepcopy(yolo)(x)[0], ref)
        swap_activations(fresh, "acon_c")
        fresh.load_state_dict(yolo.state_dict())
        assert torch.equal(fresh.eval()(x)[0], ref)


def test_yolo_match_glob_swaps_some_registrations_of_a_shared_module(yolo):
    from ultralytics.nn.modules import Conv

    shared = _convs(yolo)[0].act
    report = swap_activations(yolo, "acon_c", match="model.2.*")
    assert report.modules == len(report) > 1
    for name, conv in yolo.named_modules():
        if type(conv) is Conv:
            if name.startswith("model.2."):
                assert isinstance(conv.act, revact.AconC), name
            else:
                assert conv.act is shared, name
    yolo.eval()(_x(1, 3, 64, 64))


# ----------------------------------------------------------------------------- round trips


def test_call_sites_survive_deepcopy_pickle_and_state_dict():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    fresh = copy.deepcopy(model)
    swap_activations(model, "dyrelu_b")
    swap_activations(fresh, "dyrelu_b")
    model.eval()
    x = _x(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        buf = io.BytesIO()
        torch.save(model, buf)
        buf.seek(0)
        torch.testing.assert_close(torch.load(buf, weights_only=False)(x), ref, rtol=0, atol=0)
        torch.testing.assert_close(copy.deepcopy(model)(x), ref, rtol=0, atol=0)
        fresh.load_state_dict(model.state_dict())
        torch.testing.assert_close(fresh.eval()(x), ref, rtol=0, atol=0)
    assert "layer1.0.relu.sites.1.fc1.weight" in model.state_dict()


# ----------------------------------------------------------------------------- match / exclude


@pytest.mark.parametrize(
    ("kwargs", "n"),
    [
        ({}, 17),
        ({"exclude": "layer4.*"}, 13),
        ({"exclude": ["layer4.*", "relu"]}, 12),
        ({"match": "layer1.*"}, 4),
        ({"match": ["layer1.*", "layer2.0.*"]}, 6),
        ({"match": lambda path, m: isinstance(m, nn.ReLU) and path.endswith("1.relu")}, 8),
        ({"match": nn.ReLU, "exclude": lambda path, m: path.startswith("layer")}, 1),
        ({"match": (nn.ReLU, nn.ReLU6)}, 17),
    ],
)
def test_match_and_exclude(kwargs, n):
    model = torchvision.models.resnet18()
    assert len(swap_activations(model, "acon_c", **kwargs)) == n


def test_match_by_class_reaches_gates():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sigmoid(), nn.Conv2d(8, 4, 1), nn.ReLU())
    report = swap_activations(model, "acon_c", match=nn.Sigmoid)
    assert [(r.path, r.channels) for r in report] == [("1", 8)]
    assert isinstance(model[3], nn.ReLU)


def test_second_swap_leaves_revact_modules_alone():
    model = torchvision.models.resnet18()
    swap_activations(model, "relu", match="layer1.*")  # torch's ReLU: matched again below
    swap_activations(model, "acon_c")
    with pytest.raises(ValueError, match="no module of ResNet matches"):
        swap_activations(model, "dyrelu_b")


# ----------------------------------------------------------------------------- report


def test_report_prints_an_aligned_table():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64 * 64, 5),
                          nn.GELU())
    report = swap_activations(model, "acon_c")
    assert isinstance(report, SwapReport) and len(report) == 2
    assert [r.path for r in report] == ["1", "4"]
    assert report[1].channels == 5 and report[1].axis == -1  # (N, C) goes channels-last
    lines = str(report).splitlines()
    assert lines[0].split() == ["path", "old", "new", "channels", "axis"]
    assert lines[1].replace(" ", "").strip("-") == ""
    assert lines[2].split() == ["1", "ReLU()", "AconC", "8", "1"]
    assert lines[3].split() == ["4", "GELU(approximate='none')", "ChannelsLast(AconC)", "5", "-1"]
    assert {len(line) for line in lines[1:4]} == {len(lines[1])}  # right-aligned numbers
    assert lines[-1] == "2 call sites in 2 modules replaced"


# ----------------------------------------------------------------------------- errors


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class _Stranger(nn.Module):
    """Calls its child's activation itself: that call belongs to no registration."""

    def __init__(self):
        super().__init__()
        self.block = _Block()

    def forward(self, x):
        return self.block.act(self.block(x))


class _Repeat(nn.Module):
    """Calls its activation once per 8 pixels of width: a data-dependent number of times."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.conv(x)
        for _ in range(x.shape[-1] // 8):
            x = self.act(x)
        return x


def test_call_from_a_module_that_does_not_own_it_is_an_error():
    model = _Stranger()
    with pytest.raises(RuntimeError, match=r"'block\.act'.*called by '<_Stranger>'.*not own"):
        swap_activations(model, "acon_c")
    assert isinstance(model.block.act, nn.ReLU)  # nothing was replaced


def test_data_dependent_call_count_is_an_error():
    model = _Repeat()
    report = swap_activations(model, "acon_c", sample=_x(1, 3, 16, 16))
    assert [r.path for r in report] == ["act.sites.0", "act.sites.1"]
    assert model(_x(1, 3, 16, 16)).shape == (1, 4, 16, 16)
    with pytest.raises(RuntimeError, match=r"'act' was traced as called 2 times.*called it 1"):
        model(_x(1, 3, 8, 8))
    with pytest.raises(RuntimeError, match="called it more than 2 times"):
        model(_x(1, 3, 8, 24))
    assert model(_x(1, 3, 4, 16)).shape == (1, 4, 4, 16)  # the count is reset per forward
    assert not _RUNNING.counts  # the forwards that raised left no count behind


class _Twice(nn.Module):
    """Runs one block twice (shared weights): its activation is shared by both runs too."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x), self.block(x[..., :8])


def test_parent_run_twice_shares_its_call_sites():
    model = _Twice(_Block())
    report = swap_activations(model, "acon_c")
    assert [(r.path, r.channels) for r in report] == [("block.act", 4)]

    model = _Twice(_Repeat())  # 2 calls on 16 pixels of width, 1 call on 8
    with pytest.raises(RuntimeError, match=r"'block\.act' is called differently"):
        swap_activations(model, "acon_c", sample=_x(1, 3, 16, 16))


def test_module_never_called_is_an_error():
    model = torchvision.models.resnet18()
    model.spare = nn.ReLU()
    with pytest.raises(RuntimeError, match="'spare' never ran"):
        swap_activations(model, "acon_c")
    assert len(swap_activations(model, "acon_c", exclude="spare")) == 17


def test_argument_errors():
    model = torchvision.models.resnet18()
    with pytest.raises(ValueError, match="unknown activation 'acon_d'"):
        swap_activations(model, "acon_d")
    with pytest.raises(TypeError, match="do not pass channels="):
        swap_activations(model, "acon_c", channels=8)
    with pytest.raises(ValueError, match="relu_init=True needs .* AconC has no relu_init"):
        swap_activations(model, "acon_c", relu_init=True)
    with pytest.raises(ValueError, match="first convolution takes 3 input channels, got 1"):
        swap_activations(model, "acon_c", sample=torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="no module of ResNet matches match=<class"):
        swap_activations(model, "acon_c", match=nn.Tanh)
    with pytest.raises(ValueError, match="no module .* exclude='\\*'.*leaf module types"):
        swap_activations(model, "acon_c", exclude="*")
    with pytest.raises(ValueError, match="no convolution"):
        swap_activations(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), "acon_c")
    assert all(isinstance(m.relu, nn.ReLU) for m in model.layer1)


def test_relu_init_warns_when_replacing_something_else():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.SiLU())
    with pytest.warns(UserWarning, match="SiLU modules are replaced too"):
        swap_activations(model, "dyrelu_b", relu_init=True)


# ------------------------------------------------------------ threads, checkpoint, compile


def _randomise_new_acts(model):
    """Give every new activation its own random parameters: a call sent to the wrong site
    then changes the output instead of hiding behind identical initial values."""
    with torch.no_grad():
        for m in _new_acts(model):
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
                p.add_(torch.randn_like(p))


def test_threads_share_one_swapped_resnet18():
    # The serving case: one eval model, several threads. The call count that picks the
    # site of a BasicBlock's twice-called ReLU used to live on the module, so threads reset
    # and advanced each other's counts: mismatch errors, or outputs from the wrong site
    # (every try of this test failed so). A tiny switch interval makes the interleavings
    # that exposed it happen on any machine.
    model = torchvision.models.resnet18(num_classes=10)
    swap_activations(model, "acon_c", sample=torch.zeros(1, 3, 32, 32))
    _randomise_new_acts(model)
    model.eval()
    threads, iters = 4, 8
    xs = [[_x(2, 3, 32, 32, seed=100 * t + i) for i in range(iters)] for t in range(threads)]
    with torch.no_grad():
        # One thread, and one intra-op thread (conftest's _one_thread): the outputs to match,
        # bit for bit.
        refs = [[model(x) for x in row] for row in xs]

    errors, wrong = [], []
    start = threading.Barrier(threads)

    def serve(t):
        try:
            start.wait()
            with torch.no_grad():
                for i, x in enumerate(xs[t]):
                    if not torch.equal(model(x), refs[t][i]):
                        wrong.append((t, i))
        except Exception as e:  # noqa: BLE001 -- reported below, with the thread's index
            errors.append((t, repr(e)))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=serve, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and wrong == []
    assert not _RUNNING.counts


class _Pausing(nn.Module):
    """Calls its activation twice; ``pause`` runs between the two calls."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 1)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.act = nn.ReLU()
        self.pause = lambda: None

    def forward(self, x):
        x = self.act(self.conv1(x))
        self.pause()
        return self.act(self.conv2(x))


def test_a_forward_paused_between_its_calls_keeps_its_count():
    # The race made deterministic: a whole forward in the main thread runs while another
    # thread's forward waits between its two calls.
    model = _Pausing()
    swap_activations(model, "acon_c", sample=_x(1, 3, 4, 4))
    _randomise_new_acts(model)
    a, b = _x(2, 3, 4, 4, seed=1), _x(2, 3, 4, 4, seed=2)
    with torch.no_grad():
        ref_a, ref_b = model(a), model(b)
    sites = model.act.sites
    torch.testing.assert_close(ref_a, sites[1](model.conv2(sites[0](model.conv1(a)))),
                               rtol=0, atol=0)

    paused, go, got = threading.Event(), threading.Event(), {}
    worker = None

    def pause():
        if threading.current_thread() is worker:
            paused.set()
            assert go.wait(30)

    def serve():
        try:
            with torch.no_grad():
                got["a"] = model(a)
        except Exception as e:  # noqa: BLE001
            got["error"] = e
            paused.set()

    model.pause = pause
    worker = threading.Thread(target=serve)
    worker.start()
    try:
        assert paused.wait(30)
        with torch.no_grad():
            got["b"] = model(b)  # a whole forward while the worker's is half done
    finally:
        go.set()
        worker.join()
    assert "error" not in got, got.get("error")
    assert torch.equal(got["a"], ref_a) and torch.equal(got["b"], ref_b)
    assert not _RUNNING.counts


class _Recursive(nn.Module):
    """Runs itself again inside its own forward, between its activation's two calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.act = nn.ReLU()

    def forward(self, x, depth=2):
        x = self.act(self.conv(x))
        if depth:
            x = self(x, depth - 1)
        return self.act(x)


def test_parent_running_inside_its_own_forward_counts_each_forward():
    model = _Recursive()
    report = swap_activations(model, "acon_c", sample=_x(1, 4, 4, 4))
    assert [r.path for r in report] == ["act.sites.0", "act.sites.1"]
    _randomise_new_acts(model)
    first, second = model.act.sites

    def expected(x, depth=2):
        x = first(model.conv(x))
        if depth:
            x = expected(x, depth - 1)
        return second(x)

    x = _x(2, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected(x), rtol=0, atol=0)
    assert not _RUNNING.counts


class _Checkpointed(nn.Module):
    """A stem and a ``_Pausing`` block, the block optionally under torch.utils.checkpoint."""

    def __init__(self, checkpoint=None):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1)
        self.block = _Pausing()
        self.checkpoint = checkpoint  # None: no checkpoint; else use_reentrant=...

    def forward(self, x):
        x = self.stem(x)
        if self.checkpoint is None:
            return self.block(x)
        return torch.utils.checkpoint.checkpoint(self.block, x, use_reentrant=self.checkpoint)


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpointed_parent_gets_the_same_gradients(use_reentrant):
    # The backward pass re-runs the block's forward: its hooks count that forward afresh.
    # The non-reentrant checkpoint also stops the re-run by raising once it has what it
    # needs; the count of that forward must not outlive it.
    plain = _Checkpointed()
    swap_activations(plain, "dyrelu_b", sample=_x(1, 3, 4, 4))
    _randomise_new_acts(plain)
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpoint = use_reentrant
    x = _x(2, 3, 5, 5)
    grads = []
    for model in (plain, checkpointed):
        xi = x.clone().requires_grad_()
        out = model(xi)
        (out * _x(*out.shape, seed=3)).sum().backward()
        grads.append([xi.grad, *(p.grad for p in model.parameters())])
        assert not _RUNNING.counts
    assert all(g is not None for g in grads[1])
    for ours, ref in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


class _HalfCheckpointed(_Pausing):
    def forward(self, x):
        x = self.act(self.conv1(x))
        return torch.utils.checkpoint.checkpoint(
            lambda y: self.act(self.conv2(y)), x, use_reentrant=False)


def test_checkpoint_around_part_of_the_parent_is_an_error():
    # Re-run in the backward pass without the parent's forward, the second call cannot know
    # that it was the second: an error, never the wrong site.
    model = _HalfCheckpointed()
    swap_activations(model, "acon_c", sample=_x(1, 3, 4, 4))
    out = model(_x(2, 3, 4, 4))
    with pytest.raises(RuntimeError, match=r"'act' holds one activation per call .* called "
                                           r"outside one .*checkpoint"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match="called outside one"):
        model.act(_x(2, 4, 4, 4))
    assert not _RUNNING.counts


def test_torch_compile_fullgraph_matches_eager_in_threads():
    # The per-thread counts trace into one graph, with the site of every call fixed in it,
    # and the compiled model may be shared by threads like the eager one.
    model = nn.Sequential(_Pausing(), nn.Conv2d(4, 3, 1), _Pausing())
    swap_activations(model, "acon_c", sample=_x(1, 3, 4, 4))
    _randomise_new_acts(model)
    compiled = torch.compile(model, fullgraph=True)
    x = _x(2, 3, 5, 5).requires_grad_()
    eager = model(x)
    (g_eager,) = torch.autograd.grad(eager.sum(), x)
    out = compiled(x)
    (g_compiled,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_compiled, g_eager)

    xs = [_x(2, 3, 5, 5, seed=10 + t).requires_grad_() for t in range(3)]  # no recompile
    refs = [model(v) for v in xs]
    got = {}

    def serve(t):
        got[t] = [compiled(xs[t]) for _ in range(3)]

    workers = [threading.Thread(target=serve, args=(t,)) for t in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for t in range(3):
        assert len(got[t]) == 3  # no thread raised
        for y in got[t]:
            torch.testing.assert_close(y, refs[t])
    assert not _RUNNING.counts
