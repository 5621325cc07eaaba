"""Input sizes, backbone features, intermediate supervision and its loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from revcol_helpers import grads_of, image, make_model, max_rel_err

from revact.revcol import RevCol, RevColLoss


@pytest.mark.parametrize("size", [(32, 32), (200, 200), (225, 313)])
def test_any_input_size(size):
    x = image(*size)
    ref = grads_of(make_model(3, memory="none"), x)
    model = make_model(3, memory="full")
    assert max_rel_err(grads_of(model, x), ref) <= 1e-10
    with torch.no_grad():
        feats = model.eval().forward_features(x)
    h, w = (size[0] - 4) // 4 + 1, (size[1] - 4) // 4 + 1  # stem: 4x4 conv, stride 4
    for i, f in enumerate(feats):
        assert f.shape == (2, 8 * 2**i, h, w)
        h, w = h // 2, w // 2  # each 2x2 stride-2 conv floors odd sizes


def test_features_only():
    model = make_model(3, features_only=True, out_indices=(0, 2, 3))
    x = image()
    feats = model(x)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 16, 16), (2, 32, 4, 4), (2, 64, 2, 2)]
    for f, info in zip(feats, model.feature_info, strict=True):
        assert f.shape[1] == info["num_chs"] and 64 // f.shape[-1] == info["reduction"]
    sum(f.sum() for f in feats).backward()
    assert x.grad is not None


def test_inter_supv_outputs_and_loss_in_a_training_step():
    model = make_model(4, dtype=torch.float32, inter_supv=True, memory="full")
    x = image(dtype=torch.float32, requires_grad=False)
    targets = torch.tensor([1, 7])
    logits, recons = model(x)
    assert len(logits) == 4 and all(t.shape == (2, 10) for t in logits)
    assert len(recons) == 3 and all(r.shape == x.shape for r in recons)
    criterion = RevColLoss()
    loss = criterion((logits, recons), x, targets)
    # The official weights, spelled out.
    img = (x * torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
           + torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)).clamp(0.01, 0.99)
    manual = F.cross_entropy(logits[3], targets)
    for i in range(3):
        manual = manual + F.binary_cross_entropy_with_logits(recons[i], img) * (1 - i / 3) * 3.0
        manual = manual + F.cross_entropy(logits[i], targets) * (i + 1) / 4 * 0.7
    torch.testing.assert_close(loss, manual)
    assert len(criterion.last_terms) == 4

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.step()
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10)
    assert criterion(out, x, targets).ndim == 0  # plain logits: cross-entropy


def test_inter_supv_gradients_equal_plain_autograd():
    x = image(48, 80)  # not divisible by 32: reconstructions are resized to the input
    loss_fn = RevColLoss(mean=None, std=None)
    targets = torch.tensor([3, 4])

    def loss(out):
        return loss_fn(out, x.detach().sigmoid(), targets)

    ref = grads_of(make_model(4, inter_supv=True, memory="none"), x, loss)
    for mode, keep in [("column", None), ("full", None), ("full", 3)]:
        model = make_model(4, inter_supv=True, memory=mode, keep_every=keep)
        assert max_rel_err(grads_of(model, x, loss), ref) <= 1e-10, (mode, keep)


def test_inter_supv_large_label_space_uses_simple_decoder():
    model = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 4, num_classes=1001, inter_supv=True)
    _, recons = model(torch.randn(1, 3, 64, 64))
    assert all(r.shape == (1, 3, 64, 64) for r in recons)


def test_reconstruction_error_is_reported():
    model = make_model(8, dtype=torch.float32, memory="full", alpha=0.2)
    assert model.last_reconstruction_error is None
    x = image(dtype=torch.float32)
    model(x).sum().backward()
    err_full = model.last_reconstruction_error
    model.set_memory("full", keep_every=2)
    model(x).sum().backward()
    err_kept = model.last_reconstruction_error
    # Seven reconstructed columns at α = 0.2 compound far more than one.
    assert 0 < err_kept < err_full
