"""RevCol through timm: registration, features_only, official checkpoints, head changes."""

import subprocess
import sys

import pytest
import torch

import revact
from revact.integrations.timm import RevColTimm, checkpoint_filter_fn
from revact.revcol import VARIANTS, RevCol

timm = pytest.importorskip("timm")

NAMES = [f"revcol_{v}" for v in VARIANTS]
TINY = dict(channels=(8, 16, 32, 64), layers=(1, 1, 1, 1), num_subnet=4)


@pytest.fixture(scope="module")
def official_tiny(tmp_path_factory):
    """RevCol-T as released: ``{"model": state_dict}`` with the official keys, and its model."""
    torch.manual_seed(0)
    model = revact.revcol_tiny().eval()
    path = tmp_path_factory.mktemp("ckpt") / "revcol_tiny_1k.pth"
    torch.save({"model": model.state_dict()}, path)
    return model, str(path)


@pytest.fixture(scope="module")
def pretrained_features(official_tiny):
    return timm.create_model(
        "revcol_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=official_tiny[1]),
        features_only=True, out_indices=(1, 2, 3),
    ).eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_names_and_pretrained_tags_are_listed():
    assert timm.list_models("revcol*") == sorted(NAMES)
    assert "revcol_base.in22k_ft_in1k_384" in timm.list_pretrained("revcol*")
    assert "revcol_xlarge" not in timm.list_models("revcol*", pretrained=True)  # not released


@pytest.mark.parametrize("name", NAMES)
def test_every_size_builds_with_the_official_parameter_count(name):
    with torch.device("meta"):  # no memory, no init maths: RevCol-XL has 834M parameters
        model = timm.create_model(name)
    assert isinstance(model, RevColTimm)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(VARIANTS[name.removeprefix("revcol_")].params_m, abs=0.1)
    assert model.pretrained_cfg["architecture"] == name


def test_features_only_shapes_strides_and_channels(pretrained_features, image):
    model = pretrained_features
    assert model.feature_info.channels() == [128, 256, 512]
    assert model.feature_info.reduction() == [8, 16, 32]
    maps = model(image)
    assert [tuple(m.shape) for m in maps] == [(2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]
    # The head is pruned: a features model holds only what it runs.
    assert not any(".cls." in k or k.startswith("model.cls") for k in model.state_dict())


def test_official_checkpoint_loads_through_pretrained_cfg_overlay(
    official_tiny, pretrained_features, image
):
    reference, path = official_tiny
    model = timm.create_model(
        "revcol_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=path)
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(image), reference(image), rtol=0, atol=0)
        features = pretrained_features(image)
        expected = reference.forward_features(image)[1:]
    torch.testing.assert_close(features, expected, rtol=0, atol=0)


def test_other_num_classes_drops_the_checkpoint_head_as_timm_does(official_tiny, image):
    reference, path = official_tiny
    model = timm.create_model(
        "revcol_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=path), num_classes=7
    ).eval()
    assert model(image).shape == (2, 7)
    ref = reference.state_dict()
    for key, value in model.state_dict().items():
        if key == "cls.classifier.1.weight":  # the new Linear: fresh (its bias starts at 0)
            assert not torch.equal(value, ref[key][:7])
        elif key != "cls.classifier.1.bias":  # the rest, head LayerNorm included: checkpoint's
            assert torch.equal(value, ref[key]), key


def test_num_classes_zero_gives_pooled_features_and_reset_classifier_restores_a_head(image):
    model = RevColTimm(**TINY, num_classes=0).eval()
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    final, maps = model.forward_intermediates(image, indices=2)
    assert [m.shape[1] for m in maps] == [32, 64]
    torch.testing.assert_close(model(image), model.forward_head(final, pre_logits=True))
    model.reset_classifier(5)
    assert model(image).shape == (2, 5) and model.num_classes == 5
    with pytest.raises(ValueError, match="no dropout"):
        RevColTimm(**TINY, drop_rate=0.1)


def test_intermediate_supervision_checkpoint_loads_its_final_head():
    """Released weights may hold four heads and three decoders: a one-head model takes the
    last head, which is what the supervised model itself uses at inference."""
    supervised = RevCol(**TINY, num_classes=10, inter_supv=True).eval()
    model = RevColTimm(**TINY, num_classes=10).eval()
    model.load_state_dict(checkpoint_filter_fn({"model": supervised.state_dict()}, model))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), supervised(x), rtol=0, atol=0)


def test_import_revact_does_not_import_timm_and_registers_once_timm_is_imported():
    code = (
        "import sys, revact\n"
        "assert 'timm' not in sys.modules\n"
        "import timm\n"
        "print(timm.list_models('revcol*'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str(sorted(NAMES))
