"""Every memory mode gives the gradients of plain autograd, for inputs and parameters."""

from __future__ import annotations

import pytest
import torch
from revcol_helpers import grads_of, graph_names, image, make_model, max_rel_err, rel_err

MODES = [("column", None), ("full", None), ("full", 2)]
FN = "_SegmentFunctionBackward"


def _reference(**kwargs):
    x = image()
    return x, grads_of(make_model(memory="none", **kwargs), x)


@pytest.mark.parametrize("alpha", [None, -0.3])
def test_float64_gradients_equal_plain_autograd(alpha):
    x, ref = _reference(alpha=alpha)
    for mode, keep in MODES:
        model = make_model(memory=mode, keep_every=keep, alpha=alpha)
        got = grads_of(model, x)
        assert max_rel_err(got, ref) <= 1e-10, (mode, keep)
        assert model.last_reconstruction_error < 1e-10


def test_float32_column_gradients():
    x = image(dtype=torch.float32)
    ref = grads_of(make_model(memory="none", dtype=torch.float32), x)
    got = grads_of(make_model(memory="column", dtype=torch.float32), x)
    assert max_rel_err(got, ref) <= 1e-4


def test_backward_fills_grad_like_plain_autograd_and_writes_nothing_itself():
    x = image()
    grads = {}
    for mode in ("none", "full"):
        model = make_model(memory=mode)
        out = model(x)
        assert (FN in graph_names(out)) == (mode != "none")
        params = list(model.parameters())
        # autograd.grad must not touch .grad ...
        torch.autograd.grad(out.sum(), params)
        assert all(p.grad is None for p in params)
        # ... and .backward() fills every .grad, the first column's α with zeros as officially.
        model(x).square().sum().backward()
        assert all(p.grad is not None for p in params)
        assert torch.all(model.subnet0.alpha1.grad == 0)
        grads[mode] = [p.grad for p in params]
    assert max_rel_err(grads["full"], grads["none"]) <= 1e-10


def test_drop_path_replays_identically():
    x = image()
    results = {}
    for mode, keep in [("none", None), *MODES]:
        model = make_model(memory=mode, keep_every=keep, drop_path=0.5)
        torch.manual_seed(123)
        results[(mode, keep)] = grads_of(model, x)
        after = torch.rand(1)  # the replay must not disturb the global generator
        torch.manual_seed(123)
        model(x)
        assert torch.equal(after, torch.rand(1))
    ref = results[("none", None)]
    for key, got in results.items():
        assert max_rel_err(got, ref) <= 1e-10, key


@pytest.mark.parametrize("mode,keep", MODES)
def test_frozen_alpha_and_frozen_blocks(mode, keep):
    def freeze(model):
        for j in range(4):
            getattr(model, f"subnet{j}").alpha2.requires_grad_(False)
        model.subnet2.level1.requires_grad_(False)
        model.subnet0.requires_grad_(False)
        return model

    x = image()
    ref = grads_of(freeze(make_model(memory="none")), x)
    model = freeze(make_model(memory=mode, keep_every=keep))
    assert max_rel_err(grads_of(model, x), ref) <= 1e-10
    model(x).sum().backward()  # no "element 0 of tensors does not require grad"
    assert model.subnet1.alpha2.grad is None and model.subnet2.level1.blocks[0].gamma.grad is None
    assert model.subnet1.alpha1.grad is not None


@pytest.mark.parametrize("mode", ["column", "full"])
def test_grad_wrt_input_only_with_everything_frozen(mode):
    x = image()
    ref = make_model(memory="none").requires_grad_(False)
    model = make_model(memory=mode).requires_grad_(False)
    (g_ref,) = torch.autograd.grad(ref(x).square().sum(), x)
    out = model(x)
    assert FN in graph_names(out)
    (g,) = torch.autograd.grad(out.square().sum(), x)
    assert rel_err(g, g_ref) <= 1e-10


def test_plain_forward_when_no_grad_or_eval_or_nothing_requires_grad():
    x = image(requires_grad=False)
    model = make_model(memory="full")
    with torch.no_grad():
        assert model(x).grad_fn is None
    assert FN not in graph_names(model.eval()(x))
    model.train().requires_grad_(False)
    assert model(x).grad_fn is None
    model.subnet3.alpha0.requires_grad_(True)
    assert FN in graph_names(model(x))


def test_batchnorm_running_stats_updated_once():
    def with_bn(mode):
        model = make_model(memory=mode)
        for j in (1, 2):  # inside a reconstructed column and a kept one
            level = getattr(model, f"subnet{j}").level1
            level.fusion.down[1] = torch.nn.BatchNorm2d(16, dtype=torch.float64)
        return model

    x = image()
    ref_model = with_bn("none")
    ref = grads_of(ref_model, x)
    for mode, keep in MODES:
        model = with_bn(mode).set_memory(mode, keep)
        got = grads_of(model, x)
        # The conv bias before BN has a zero gradient in exact arithmetic (rounding noise only).
        names = ["x"] + [n for n, _ in model.named_parameters()]
        biases = ("subnet1.level1.fusion.down.0.bias", "subnet2.level1.fusion.down.0.bias")
        noise = [k for k, n in enumerate(names) if n in biases]
        assert len(noise) == 2 and all(got[k].abs().max() < 1e-12 for k in noise)
        keep_idx = [k for k in range(len(names)) if k not in noise]
        assert max_rel_err([got[k] for k in keep_idx], [ref[k] for k in keep_idx]) <= 1e-10
        for j in (1, 2):
            bn = getattr(model, f"subnet{j}").level1.fusion.down[1]
            bn_ref = getattr(ref_model, f"subnet{j}").level1.fusion.down[1]
            assert bn.num_batches_tracked.item() == 1
            torch.testing.assert_close(bn.running_mean, bn_ref.running_mean, rtol=0, atol=1e-12)
            torch.testing.assert_close(bn.running_var, bn_ref.running_var, rtol=0, atol=1e-12)


def test_alpha_clamped_keeping_sign():
    x = image()
    ref_model = make_model(memory="none")
    model = make_model(memory="full")
    for m in (ref_model, model):
        with torch.no_grad():
            m.subnet2.alpha1[0, :4, 0, 0] = torch.tensor([1e-5, -1e-5, 0.0, -2e-4])
    before = model.subnet2.alpha1.detach().clone()
    ref = grads_of(ref_model, x)
    got = grads_of(model, x)
    assert torch.equal(model.subnet2.alpha1.detach(), before)  # no in-place edit
    a = model.subnet2.alpha(1)
    assert a[0, :4, 0, 0].tolist() == pytest.approx([1e-3, -1e-3, 1e-3, -1e-3])
    # The reconstruction divides by 1e-3 in three later columns: looser, still tight.
    assert max_rel_err(got, ref) <= 1e-6
    assert all(torch.isfinite(g).all() for g in got)


def _autocast_errors(alpha: float) -> dict[str, float]:
    x = image(dtype=torch.float32)
    ref = grads_of(make_model(memory="none", dtype=torch.float32, alpha=alpha), x)
    errs = {}
    for mode in ("none", "column"):
        model = make_model(memory=mode, dtype=torch.float32, alpha=alpha)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats = model.forward_features(x)
            assert all(f.dtype == torch.float32 for f in feats)  # column state stays float32
            got = grads_of(model, x)
        errs[mode] = max_rel_err(got, ref)
    return errs


@pytest.mark.parametrize("alpha", [0.5, 0.1])
def test_autocast_bfloat16_column_no_worse_than_plain(alpha):
    errs = _autocast_errors(alpha)
    assert errs["column"] <= 2 * errs["none"] + 1e-6, errs
