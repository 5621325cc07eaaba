"""RevCol by name: the published sizes and ``revcol_nano`` in the model registry, and a short
training run of the preset through the engine on 28×28 IDX data."""

from __future__ import annotations

import pytest
import torch

import revact
from revact.data.synthetic import write_synthetic_idx
from revact.models import create_model, list_models
from revact.revcol import RevCol
from revact.train.config import TrainConfig
from revact.train.engine import train

PUBLISHED = ["revcol_tiny", "revcol_small", "revcol_base", "revcol_large", "revcol_xlarge"]


def test_published_sizes_are_the_public_builders():
    assert {*PUBLISHED, "revcol_nano"} <= set(list_models())
    with torch.device("meta"):
        by_name = create_model("RevCol-Tiny", act_layer="acon_c", num_classes=7)
        direct = revact.revcol_tiny(act_layer="acon_c", num_classes=7)
    assert by_name.state_dict().keys() == direct.state_dict().keys()
    assert by_name.cls.classifier[1].out_features == 7


@pytest.mark.parametrize("act", ["gelu", "dyrelu_b", "acon_c"])
def test_nano_takes_the_engines_arguments_and_28px_inputs(act):
    torch.manual_seed(0)
    model = create_model("revcol_nano", act_layer=act, num_classes=10, in_chans=1)
    assert isinstance(model, RevCol) and model.pad_small_inputs
    assert (model.channels, model.layers, model.num_subnet) == ((16, 32, 64, 128),
                                                                (1, 1, 1, 1), 4)
    logits = model(torch.randn(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    logits.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_nano_features_only():
    model = create_model("revcol_nano", act_layer="dyrelu_b", features_only=True)
    feats = model(torch.randn(2, 1, 28, 28))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 8, 8), (2, 32, 4, 4), (2, 64, 2, 2),
                                               (2, 128, 1, 1)]


def test_nano_trains_through_the_engine(tmp_path):
    data = write_synthetic_idx(tmp_path / "idx", n_train=300, n_test=100)
    cfg = TrainConfig(model="revcol_nano", act="dyrelu_b", epochs=2, batch_size=50,
                      opt="adamw", data_dir=data, val_size=100, out=tmp_path / "run",
                      threads=1, progress=False)
    metrics = train(cfg)
    assert metrics["params"] > 0 and metrics["macs"] > metrics["act_macs"] > 0
    assert metrics["test_acc"] > 30  # chance is 10%
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
