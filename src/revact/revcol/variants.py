"""The published RevCol sizes (official parameter counts with a 1000-class head)."""

from __future__ import annotations

from typing import Any

from revact.revcol.model import RevCol

__all__ = ["VARIANTS", "revcol_tiny", "revcol_small", "revcol_base", "revcol_large",
           "revcol_xlarge"]

#: name -> (channels, blocks per level, columns, default drop path, official params in M)
VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, float, float]] = {
    "tiny": ((64, 128, 256, 512), (2, 2, 4, 2), 4, 0.1, 30.5),
    "small": ((64, 128, 256, 512), (2, 2, 4, 2), 8, 0.3, 60.6),
    "base": ((72, 144, 288, 576), (1, 1, 3, 2), 16, 0.4, 138.6),
    "large": ((128, 256, 512, 1024), (1, 2, 6, 2), 8, 0.5, 273.1),
    "xlarge": ((224, 448, 896, 1792), (1, 2, 6, 2), 8, 0.5, 833.8),
}


def _build(name: str, kwargs: dict[str, Any]) -> RevCol:
    channels, layers, columns, drop_path, _ = VARIANTS[name]
    kwargs.setdefault("drop_path", drop_path)
    return RevCol(channels, layers, columns, **kwargs)


def revcol_tiny(**kwargs: Any) -> RevCol:
    """RevCol-T: channels 64-512, blocks (2, 2, 4, 2), 4 columns, drop path 0.1; 30.5M params.

    Keyword arguments go to :class:`RevCol`.
    """
    return _build("tiny", kwargs)


def revcol_small(**kwargs: Any) -> RevCol:
    """RevCol-S: channels 64-512, blocks (2, 2, 4, 2), 8 columns, drop path 0.3; 60.6M params."""
    return _build("small", kwargs)


def revcol_base(**kwargs: Any) -> RevCol:
    """RevCol-B: channels 72-576, blocks (1, 1, 3, 2), 16 columns, drop path 0.4; 138.6M
    params."""
    return _build("base", kwargs)


def revcol_large(**kwargs: Any) -> RevCol:
    """RevCol-L: channels 128-1024, blocks (1, 2, 6, 2), 8 columns, drop path 0.5; 273.1M
    params."""
    return _build("large", kwargs)


def revcol_xlarge(**kwargs: Any) -> RevCol:
    """RevCol-XL: channels 224-1792, blocks (1, 2, 6, 2), 8 columns, drop path 0.5; 833.8M
    params."""
    return _build("xlarge", kwargs)
