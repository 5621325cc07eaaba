"""Bytes saved for backward (saved-tensor hooks, each storage counted once)."""

from __future__ import annotations

import torch
from revcol_helpers import image, make_model, saved_bytes


def _bytes(columns: int, mode: str, keep_every: int | None = None) -> int:
    model = make_model(columns, dtype=torch.float32, memory=mode, keep_every=keep_every)
    x = image(dtype=torch.float32)
    return saved_bytes(lambda: model(x))


def _four_maps_bytes() -> int:
    model = make_model(2, dtype=torch.float32)
    with torch.no_grad():
        feats = model.forward_features(image(dtype=torch.float32, requires_grad=False))
    return sum(f.numel() * f.element_size() for f in feats)


def test_full_memory_does_not_grow_with_columns():
    full4, full16 = _bytes(4, "full"), _bytes(16, "full")
    assert full16 <= 1.2 * full4, (full4, full16)
    # Keeping every 4th column costs one more set of four maps per kept column.
    assert _bytes(16, "full", keep_every=4) <= full16 + 3 * _four_maps_bytes()


def test_column_memory_is_the_official_per_column_cost():
    maps = _four_maps_bytes()
    for n in (4, 8):
        column, full = _bytes(n, "column"), _bytes(n, "full")
        # Official: four level outputs per column (+ stem input/output and head, shared with
        # 'full', which keeps one column's outputs).
        assert column <= full + (n - 1) * maps, (n, column, full, maps)


def test_plain_autograd_for_contrast():
    none4, none8 = _bytes(4, "none"), _bytes(8, "none")
    assert none8 > 1.8 * none4  # grows linearly with the columns ...
    assert none4 > 4 * _bytes(4, "column")  # ... and is several times the reversible cost
