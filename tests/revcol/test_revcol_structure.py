"""Sizes, parameter counts and the official checkpoint layout (built on the meta device)."""

from __future__ import annotations

import pytest
import torch

import revact
from revact.revcol import VARIANTS, RevCol, revcol_tiny
from revact.revcol.reversible import Column

OFFICIAL_M = {"tiny": 30.5, "small": 60.6, "base": 138.6, "large": 273.1, "xlarge": 833.8}


def _block(d: dict, p: str, c: int, hidden: int, k: int) -> None:
    d.update({
        f"{p}.dwconv.weight": (c, 1, k, k), f"{p}.dwconv.bias": (c,),
        f"{p}.norm.weight": (c,), f"{p}.norm.bias": (c,),
        f"{p}.pwconv1.weight": (hidden, c), f"{p}.pwconv1.bias": (hidden,),
        f"{p}.pwconv2.weight": (c, hidden), f"{p}.pwconv2.bias": (c,),
        f"{p}.gamma": (c,),
    })


def _head(d: dict, p: str, c: int, k: int) -> None:
    d.update({f"{p}.classifier.0.weight": (c,), f"{p}.classifier.0.bias": (c,),
              f"{p}.classifier.1.weight": (k, c), f"{p}.classifier.1.bias": (k,)})


def expected_layout(channels, layers, columns, num_classes=1000, inter_supv=False,
                    kernel_size=3) -> dict[str, tuple[int, ...]]:
    """Key → shape of the official state dict, written from SPEC §3's naming rules."""
    c = channels
    d: dict[str, tuple[int, ...]] = {
        "stem.0.weight": (c[0], 3, 4, 4), "stem.0.bias": (c[0],),
        "stem.1.weight": (c[0],), "stem.1.bias": (c[0],),
    }
    for j in range(columns):
        for i in range(4):
            d[f"subnet{j}.alpha{i}"] = (1, c[i], 1, 1)
        for i in range(4):
            lv = f"subnet{j}.level{i}"
            if i > 0:
                d[f"{lv}.fusion.down.0.weight"] = (c[i], c[i - 1], 2, 2)
                d[f"{lv}.fusion.down.0.bias"] = (c[i],)
                d[f"{lv}.fusion.down.1.weight"] = (c[i],)
                d[f"{lv}.fusion.down.1.bias"] = (c[i],)
            if j > 0 and i < 3:
                up = f"{lv}.fusion.up.channel_reschedule"
                d[f"{up}.0.weight"] = (c[i], c[i + 1])
                d[f"{up}.0.bias"] = (c[i],)
                d[f"{up}.1.weight"] = (c[i],)
                d[f"{up}.1.bias"] = (c[i],)
            for b in range(layers[i]):
                _block(d, f"{lv}.blocks.{b}", c[i], 4 * c[i], kernel_size)
    if not inter_supv:
        _head(d, "cls", c[3], num_classes)
        return d
    for h in range(4):
        _head(d, f"cls_blocks.{h}", c[3], num_classes)
    for k in range(3):
        p = f"decoder_blocks.{k}"
        if num_classes <= 1000:
            dims = c[::-1]
            for s in range(3):
                d[f"{p}.proj_layers.{s}.0.weight"] = (dims[s + 1], dims[s], 1, 1)
                d[f"{p}.proj_layers.{s}.0.bias"] = (dims[s + 1],)
                d[f"{p}.proj_layers.{s}.1.weight"] = (dims[s + 1],)
                d[f"{p}.proj_layers.{s}.1.bias"] = (dims[s + 1],)
                _block(d, f"{p}.normal_layers.{s}.0", dims[s + 1], dims[s + 1], 3)
            d[f"{p}.projback.0.weight"] = (48, c[0], 1, 1)
            d[f"{p}.projback.0.bias"] = (48,)
        else:
            d[f"{p}.projback.0.weight"] = (c[3],)
            d[f"{p}.projback.0.bias"] = (c[3],)
            d[f"{p}.projback.1.weight"] = (32 * 32 * 3, c[3], 1, 1)
            d[f"{p}.projback.1.bias"] = (32 * 32 * 3,)
    return d


def _layout(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_counts_match_official(name):
    with torch.device("meta"):
        model = getattr(revact, f"revcol_{name}")()
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / 1e6 - OFFICIAL_M[name]) <= 0.05, n
    size = VARIANTS[name]
    assert model.num_subnet == size.columns
    assert _layout(model) == expected_layout(size.channels, size.layers, size.columns)
    # Default drop path: rising linearly to its maximum over the blocks of every column.
    last = model.subnet1.level3.blocks[-1].drop_path
    assert last.p == pytest.approx(size.drop_path)
    assert not hasattr(model.subnet1.level0.blocks[0].drop_path, "p")  # rate 0: no module


def test_variant_record_builds_with_its_defaults():
    """One record per size: build() applies the published drop path unless given."""
    tiny = VARIANTS["tiny"]
    with torch.device("meta"):
        default, custom = tiny.build(), tiny.build(drop_path=0.0, num_classes=10)
    assert default.subnet1.level3.blocks[-1].drop_path.p == pytest.approx(tiny.drop_path)
    assert not hasattr(custom.subnet1.level3.blocks[-1].drop_path, "p")
    assert tiny.arguments(num_classes=10) == {
        "channels": tiny.channels, "layers": tiny.layers, "num_subnet": tiny.columns,
        "drop_path": tiny.drop_path, "num_classes": 10}
    with torch.device("meta"):
        assert _layout(default) == _layout(revcol_tiny())


@pytest.mark.parametrize("num_classes", [1000, 21841])
def test_inter_supv_layout(num_classes):
    with torch.device("meta"):
        model = revcol_tiny(inter_supv=True, num_classes=num_classes)
    tiny = VARIANTS["tiny"]
    assert _layout(model) == expected_layout(tiny.channels, tiny.layers, tiny.columns,
                                             num_classes, True)


def test_kernel_size_and_official_state_dict_loads_strict():
    with torch.device("meta"):
        model = RevCol((8, 16, 32, 64), (1, 2, 1, 1), 3, num_classes=7, kernel_size=5)
    assert _layout(model) == expected_layout((8, 16, 32, 64), (1, 2, 1, 1), 3, 7, kernel_size=5)
    # A checkpoint with exactly the official keys loads strictly into every memory mode.
    official = {k: torch.randn(s) for k, s in expected_layout((8, 16, 32, 64), (1, 1, 1, 1), 2,
                                                              5).items()}
    for mode in ("none", "column", "full"):
        m = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, num_classes=5, memory=mode)
        m.load_state_dict(official, strict=True)


def test_no_forward_at_construction(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("forward ran during construction")

    monkeypatch.setattr(RevCol, "forward", boom)
    monkeypatch.setattr(Column, "forward", boom)
    RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, num_classes=10)
    with torch.device("meta"):
        revcol_tiny(features_only=True)


def test_init_values():
    torch.manual_seed(0)
    m = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, num_classes=10)
    assert torch.all(m.subnet1.alpha2 == 0.5) and m.subnet1.alpha2.shape == (1, 32, 1, 1)
    assert torch.all(m.subnet0.level1.blocks[0].gamma == 1e-6)
    assert torch.all(m.cls.classifier[1].bias == 0)
    # Truncated normal with std 0.02, cut at ±2 (absolute, as timm's and torch's default).
    w = m.subnet1.level3.blocks[0].pwconv1.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("inter_supv", [False, True])
def test_head_init_scale(inter_supv):
    kwargs = dict(num_classes=10, inter_supv=inter_supv)
    torch.manual_seed(0)
    ref = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 4, **kwargs)
    torch.manual_seed(0)
    scaled = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 4, head_init_scale=0.25, **kwargs)
    heads = ["cls"] if not inter_supv else [f"cls_blocks.{h}" for h in range(4)]
    sd_ref, sd = ref.state_dict(), scaled.state_dict()
    for h in heads:
        w = f"{h}.classifier.1.weight"
        torch.testing.assert_close(sd[w], sd_ref[w] * 0.25)
    assert torch.equal(sd["subnet1.level0.blocks.0.pwconv1.weight"],
                       sd_ref["subnet1.level0.blocks.0.pwconv1.weight"])


def test_feature_info_without_forward():
    with torch.device("meta"):
        m = revcol_tiny(features_only=True, out_indices=(1, 3))
    assert [f["num_chs"] for f in m.feature_info] == [128, 512]
    assert [f["reduction"] for f in m.feature_info] == [8, 32]
    assert m.feature_info[0]["module"] == "subnet3.level1"
    assert not any(k.startswith("cls") for k in m.state_dict())


def test_argument_errors():
    with pytest.raises(ValueError, match="memory"):
        RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, memory="some")
    with pytest.raises(ValueError, match="keep_every"):
        RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, memory="column", keep_every=2)
    with pytest.raises(ValueError, match="divisible by 4"):
        RevCol((8, 16, 32, 64), (1, 1, 1, 1), 3, inter_supv=True)
    with pytest.raises(ValueError, match="out_indices"):
        RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2, features_only=True, out_indices=(4,))
    m = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 2)
    assert m.set_memory("full", keep_every=1) is m and m.keep_every == 1
    with pytest.raises(ValueError):
        m.set_memory("full", keep_every=0)
