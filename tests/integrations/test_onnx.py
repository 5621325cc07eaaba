"""ONNX export: every activation, RevCol, a swapped torchvision model and the CLI, each file
run in ONNX Runtime on another batch size than it was exported with."""

import os
import warnings

import pytest
import torch
from torch import nn

import revact
from revact.activations.create_act import act_spec, list_acts
from revact.cli import main
from revact.integrations.onnx import OnnxExport, export_onnx
from revact.integrations.resolve import load_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

C = 8


def _cases() -> list:
    """(registry name, create_act kwargs, input shape) covering every activation, every
    Meta-ACON generator and DY-ReLU in both layouts with K = 1..3."""
    cases = []
    for name in list_acts():
        spec = act_spec(name)
        if spec.family == "dyrelu":
            for k in (1, 2, 3):
                cases.append((name, {"k": k}, (2, C, 5, 6)))
                cases.append((name, {"k": k, "layout": "tokens"}, (2, 7, C)))
            cases.append((name, {}, (2, C, 9)))
        elif name == "meta_acon":
            cases += [(name, {"generator": g}, (2, C, 5, 6)) for g in revact.MetaAcon.GENERATORS]
        else:
            cases.append((name, {}, (2, C, 5, 6)))
    cases.append(("swish", {"learnable": "scalar", "beta": 1.5}, (2, C, 5, 6)))
    cases.append(("swish", {"beta": 1.5}, (2, C, 5, 6)))
    return cases



def _id(case) -> str:
    name, kwargs, shape = case
    return "-".join([name, *(f"{k}={v}" for k, v in kwargs.items()), f"{len(shape)}d"])


def _batch_axis(path) -> str:
    """The name (dynamic) or size (static) of the input's first axis in the file."""
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param or str(dim.dim_value)


@pytest.mark.parametrize("case", _cases(), ids=_id)
def test_every_activation_exports(case, tmp_path):
    name, kwargs, shape = case
    channels = C if act_spec(name).channel_arg else None
    act = revact.create_act(name, channels=channels, **kwargs)
    result = export_onnx(act, torch.randn(shape), tmp_path / "act.onnx")
    assert result.check_batch == shape[0] + 1
    assert result.max_abs_diff <= 1e-4
    model = onnx.load(str(result.path))
    assert model.opset_import[0].version == 17
    assert _batch_axis(result.path) == "batch"


@pytest.mark.parametrize("name", ["acon_c", "acon_b", "acon_a"])
def test_acon_exports_five_activation_sized_nodes(name, tmp_path):
    """x·(p2 + dp·σ(β·dp·x)) with the parameter-only products folded into constants: no
    casts, no ``addcmul`` scale, nothing else."""
    act = revact.create_act(name, channels=C if act_spec(name).channel_arg else None)
    result = export_onnx(act, torch.randn(2, C, 5, 6), tmp_path / "act.onnx")
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node
           if n.op_type not in ("Constant", "Identity")]
    assert ops == ["Mul", "Sigmoid", "Mul", "Add", "Mul"]
    assert result.max_abs_diff <= 1e-5


@pytest.mark.parametrize("name", ["dyrelu_b", "dyrelu_c"])
def test_dyrelu_exports_its_map_as_six_activation_sized_nodes(name, tmp_path):
    """K = 2: a0·x + b0 + relu(da·x + db) (DY-ReLU-C then times its spatial map), read off
    the nodes that take the activation's input: no casts (the pool's either), no
    ``addcmul`` scale."""
    act = revact.create_act(name, channels=C)
    model = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), act)
    result = export_onnx(model, torch.randn(2, 3, 5, 6), tmp_path / "act.onnx")
    graph = onnx.load(str(result.path)).graph
    conv_out = next(n.output[0] for n in graph.node if n.op_type == "Conv")
    readers = sorted(n.op_type for n in graph.node if conv_out in n.input)
    # a0·x and da·x, the hyper-function's pool, shapes; DY-ReLU-C's spatial logits too.
    assert readers == (["Mul", "Mul", "ReduceMean", "Shape"] if name == "dyrelu_b"
                       else ["Mul", "Mul", "Mul", "ReduceMean", "Shape", "Shape", "Shape"])
    ops = [n.op_type for n in graph.node]
    tail = ["Mul", "Add", "Relu", "Add"] + (["Mul"] if name == "dyrelu_c" else [])
    assert [op for op in ops[-len(tail) - 4:] if op in ("Mul", "Add", "Relu")][-len(tail):] \
        == tail
    assert result.max_abs_diff <= 1e-5


def test_train_mode_is_restored_and_eval_mode_exported(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, C, 3), nn.BatchNorm2d(C), revact.MetaAcon(C, r=2))
    model.train()
    model(torch.randn(4, 3, 8, 8))  # running statistics away from their initial values
    model[1].eval()  # one module already in eval mode stays so
    result = export_onnx(model, torch.randn(2, 3, 8, 8), tmp_path / "m.onnx")
    assert result.max_abs_diff <= 1e-4
    assert [m.training for m in model] == [True, False, True]
    assert model[2].bn1.training


def test_revcol_classifier_and_features(tmp_path):
    model = revact.RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, num_classes=10)
    result = export_onnx(model, torch.randn(1, 3, 64, 64), tmp_path / "revcol.onnx")
    assert result.max_abs_diff <= 1e-4 and model.training

    backbone = revact.RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, features_only=True,
                             out_indices=(1, 2, 3), act_layer="dyrelu_b")
    result = export_onnx(backbone, torch.randn(1, 3, 64, 64), tmp_path / "features.onnx")
    outputs = onnx.load(str(result.path)).graph.output
    assert [o.name for o in outputs] == ["output0", "output1", "output2"]
    assert all(o.type.tensor_type.shape.dim[0].dim_param == "batch" for o in outputs)
    assert result.max_abs_diff <= 1e-4


def test_swapped_torchvision_resnet(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=10)
    sample = torch.randn(1, 3, 32, 32)
    revact.swap_activations(model, "dyrelu_b", sample=sample)
    # The block's one ReLU, called twice, became two call sites with a per-forward count.
    assert isinstance(model.layer1[0].relu, revact.CallSites)
    result = revact.export_onnx(model, sample, tmp_path / "r18.onnx")
    assert result.max_abs_diff <= 1e-4
    # The export's forward passes leave the call counters consistent for the next one.
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))


def test_static_batch_and_no_check(tmp_path):
    act = revact.AconC(C)
    result = export_onnx(act, torch.randn(3, C, 4, 4), tmp_path / "a.onnx", opset=18,
                         dynamic_batch=False)
    assert result.check_batch == 3 and _batch_axis(result.path) == "3"
    assert onnx.load(str(result.path)).opset_import[0].version == 18
    unchecked = export_onnx(act, torch.randn(3, C, 4, 4), tmp_path / "b.onnx", check=False)
    assert unchecked == OnnxExport(tmp_path / "b.onnx", 17, True)


class _CallCounter(nn.Module):
    """Its output depends on Python state the trace fixes: the file cannot match."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


def test_mismatch_raises_with_the_difference(tmp_path):
    with pytest.raises(RuntimeError, match="differs from PyTorch's by up to"):
        export_onnx(_CallCounter(), torch.ones(1, 4), tmp_path / "c.onnx")


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 17"):
        export_onnx(nn.ReLU(), torch.randn(1, 4), tmp_path / "r.onnx", opset=16)


def test_cli_exports_and_checks(tmp_path, capsys):
    out = tmp_path / "sub" / "mbv2.onnx"
    argv = ["export", "mbv2_tiny", "--input", "1,28,28", "--act", "meta_acon", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "swapped" in printed and "ONNX Runtime check: batch 2" in printed
    assert out.exists() and _batch_axis(out) == "batch"


def test_cli_model_names():
    torchvision = pytest.importorskip("torchvision")
    assert isinstance(load_model("revcol_nano", 3)[0], revact.RevCol)
    assert load_model("mbv2", 3)[0].stem[0].in_channels == 3
    assert isinstance(load_model("resnet18", 3)[0], torchvision.models.ResNet)


def test_cli_errors(tmp_path, capsys):
    assert main(["export", "no_such_net", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model 'no_such_net'" in capsys.readouterr().err
    assert main(["export", "mbv2_tiny", "--act", "dyrelu_bb", "--input", "1,28,28",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    with pytest.raises(SystemExit):
        main(["export", "mbv2_tiny", "--input", "1x28x28", "--out", str(tmp_path / "x.onnx")])


def test_opset_range_is_stated_and_enforced(tmp_path):
    from revact.integrations import onnx_commands
    from revact.integrations.onnx import MAX_OPSET, MIN_OPSET

    # The CLI's range (kept free of a torch import) is the API's, and torch's exporter
    # goes that high.
    assert onnx_commands.OPSETS == (MIN_OPSET, MAX_OPSET) == (17, 20)
    assert MAX_OPSET <= torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    for opset in (21, 99):
        with pytest.raises(ValueError, match=f"at most 20 .*got {opset}"):
            export_onnx(nn.ReLU(), torch.randn(1, 4), tmp_path / "r.onnx", opset=opset)
    with pytest.raises(TypeError, match="opset must be an int"):
        export_onnx(nn.ReLU(), torch.randn(1, 4), tmp_path / "r.onnx", opset=18.0)
    assert not (tmp_path / "r.onnx").exists()


@pytest.mark.parametrize("opset", [18, 19, 20])
def test_every_family_exports_up_to_the_highest_opset(opset, tmp_path):
    # The range MAX_OPSET states: each activation family and RevCol's blocks at each opset.
    model = nn.Sequential(
        nn.Conv2d(3, C, 3, padding=1), revact.create_act("dyrelu_b", channels=C, k=3),
        revact.create_act("dyrelu_c", channels=C), revact.MetaAcon(C, r=2),
        revact.AconC(C), revact.create_act("swish"),
        revact.RevCol((C, C, C, C), (1, 1, 1, 1), 2, in_chans=C, num_classes=4),
    )
    result = export_onnx(model, torch.randn(1, 3, 32, 32), tmp_path / "m.onnx", opset=opset)
    assert result.max_abs_diff <= 1e-4
    assert onnx.load(str(result.path)).opset_import[0].version == opset


@pytest.mark.parametrize(("sample", "error", "match"), [
    (3, TypeError, "must be a tensor with a batch axis.*got int"),
    ([torch.randn(1, 3, 8, 8)], TypeError, "must be a tensor with a batch axis.*got list"),
    (torch.randint(0, 5, (1, 3, 8, 8)), TypeError, "floating-point tensor.*got torch.int64"),
    (torch.randn(3, 8, 8), ValueError, r"needs a batch axis.*got shape \(3, 8, 8\)"),
    (torch.tensor(1.0), ValueError, r"needs a batch axis.*got shape \(\)"),
    (torch.randn(1, 4, 8, 8), ValueError, "takes 3 input channels, got 4"),
], ids=["int", "list", "int-tensor", "no-batch-axis", "scalar", "channels"])
def test_bad_samples_are_refused_clearly(sample, error, match, tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(error, match=match):
        export_onnx(model, sample, tmp_path / "m.onnx")


def test_unwritable_paths_are_refused_before_exporting(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(NotADirectoryError, match=f"{afile} is a file, not a folder"):
        export_onnx(nn.ReLU(), torch.randn(1, 4), afile / "sub" / "r.onnx")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        export_onnx(nn.ReLU(), torch.randn(1, 4), tmp_path)
    if os.path.isdir("/proc/self"):  # Linux: takes no new files, even from root
        with pytest.raises(OSError, match="/proc takes no new files"):
            export_onnx(nn.ReLU(), torch.randn(1, 4), "/proc/revact-test.onnx")


def test_revcol_export_warns_nothing(tmp_path, recwarn):
    # The tracer's warning on RevCol's input-size check (benign: only the batch axis is
    # dynamic) is silenced at its source; padding a small input (torch's own pad symbolic)
    # adds nothing either.
    warnings.simplefilter("always")
    model = revact.RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, num_classes=10, in_chans=1,
                          pad_small_inputs=True)
    export_onnx(model, torch.randn(1, 1, 28, 28), tmp_path / "small.onnx")
    export_onnx(model, torch.randn(1, 1, 32, 32), tmp_path / "exact.onnx")
    assert [str(w.message) for w in recwarn] == []
