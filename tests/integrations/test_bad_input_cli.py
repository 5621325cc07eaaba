"""``revact flops`` and ``revact export`` on bad input: one line on stderr and exit status
2, no traceback (issue "every bad input, round two"), and the cases that now work."""

import os

import pytest

from revact.cli import main


def _one_line_error(capsys, argv: list[str], *expected: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize(("argv", "expected"), [
    (["resnet18", "--input", "3,224"], "--input needs 3 sizes for this model"),
    (["resnet18", "--input", "1,3,224,224"], "--input is one image's shape without the batch"),
    (["resnet18", "--input", "1,64,64"], "takes 3 input channels, got 1"),
    (["timm:notamodel"], "unknown timm model 'notamodel'"),
    (["timm:resnet19"], "did you mean timm:resnet"),
    (["missing.yaml"], "'missing.yaml' does not exist (`revact yolo models` lists"),
    (["yolov8n-notanact.yaml"], "'yolov8-notanact.yaml' does not exist"),
    (["revcol_tiny", "--input", "3,16,16"], "got 16x16; pass --pad-small-inputs"),
    (["mbv2", "--input", "1,28,28", "--pad-small-inputs"], "applies to RevCol models only"),
    (["vit_b_16", "--input", "3,64,64"],
     "VisionTransformer failed on a batch of shape (1, 3, 64, 64)"),
], ids=["too-few-sizes", "batch-axis", "channels", "timm-unknown", "timm-close",
        "missing-yaml", "unknown-act-yaml", "revcol-small", "pad-not-revcol", "vit-size"])
def test_flops_bad_input(capsys, argv, expected):
    err = _one_line_error(capsys, ["flops", *argv], expected)
    if argv[0] == "vit_b_16":
        assert "Expected 224 but got 64" in err  # torchvision's own reason, kept


def test_flops_every_scale_letter_of_the_revcol_yamls(capsys, tmp_path):
    # Ultralytics' five scale letters on our RevCol YAMLs (it failed with KeyError: 'l').
    assert main(["flops", "yolov8x-revcol_t.yaml", "--input", "3,64,64"]) == 0
    assert "per 3x64x64 input" in capsys.readouterr().out
    # A YAML of one's own without that scale: which ones it has, in one line.
    cfg = tmp_path / "yolov8l-mine.yaml"
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "src", "revact",
                           "integrations", "ultralytics", "cfg", "yolov8-revcol_t.yaml")) as f:
        cfg.write_text(f.read().replace("  l: [1.00, 1.00, 512]\n", ""))
    _one_line_error(capsys, ["flops", str(cfg)],
                    "yolov8l-mine.yaml: scale 'l' is not in the YAML's scales (n, s, m, x)")


def test_flops_pads_small_revcol_inputs_on_request(capsys):
    assert main(["flops", "revcol_nano", "--input", "1,16,16"]) == 0  # pads by default
    assert main(["flops", "revcol_tiny", "--input", "3,16,16", "--pad-small-inputs"]) == 0
    assert "per 3x16x16 input" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "expected"), [
    (["--out", "{tmp}/afile/x.onnx"], "{tmp}/afile is a file, not a folder"),
    (["--out", "{tmp}"], "it is a folder"),
    (["--out", "/proc/revact-x.onnx"], "/proc takes no new files"),
    (["--input", "1,1,28,28", "--out", "{tmp}/x.onnx"], "without the batch axis"),
    (["--input", "1,16,16", "--out", "{tmp}/x.onnx"], "pass --pad-small-inputs"),
], ids=["under-a-file", "a-folder", "proc", "batch-axis", "revcol-small"])
def test_export_bad_input(capsys, tmp_path, argv, expected):
    if "/proc" in argv[-1] and not os.path.isdir("/proc/self"):
        pytest.skip("Linux /proc")
    (tmp_path / "afile").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    model = "revcol_tiny" if "pad" in expected else "mbv2_tiny"
    base = ["export", model, "--input", "1,28,28"]
    _one_line_error(capsys, [*base, *argv], expected.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("opset", ["99", "21", "16", "x"])
def test_export_opset_range_up_front(capsys, tmp_path, opset):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "mbv2_tiny", "--out", str(tmp_path / "x.onnx"), "--opset", opset])
    assert exit_.value.code == 2
    err = capsys.readouterr().err  # argparse's usage, then one line
    assert err.splitlines()[-1] == ("revact export: error: argument --opset: expected 17 to "
                                    f"20 (the TorchScript exporter's highest), got '{opset}'")


def test_export_help_names_every_kind_of_model(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    assert "timm:NAME" in out and ".yaml" in out and "revact yolo models" in out
    assert "17 to 20" in out and "--pad-small-inputs" in out
