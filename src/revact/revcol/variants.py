"""The published RevCol sizes (official parameter counts with a 1000-class head)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from revact.revcol.model import RevCol

__all__ = ["VARIANTS", "RevColVariant", "revcol_tiny", "revcol_small", "revcol_base",
           "revcol_large", "revcol_xlarge"]


@dataclass(frozen=True)
class RevColVariant:
    """One RevCol size: its structure, its published drop-path rate and parameter count.

    Attributes:
        channels: the four levels' channels.
        layers: ConvNeXt blocks per level.
        columns: number of columns (``num_subnet``).
        drop_path: the published stochastic-depth rate, the default of :meth:`build`.
        params_m: official parameters in millions with a 1000-class head (None: custom).
    """

    channels: tuple[int, ...]
    layers: tuple[int, ...]
    columns: int
    drop_path: float = 0.0
    params_m: float | None = None

    def arguments(self, **kwargs: Any) -> dict[str, Any]:
        """:class:`RevCol`'s keyword arguments for this size; ``kwargs`` win, and
        ``drop_path`` defaults to the published rate."""
        return {"channels": self.channels, "layers": self.layers, "num_subnet": self.columns,
                "drop_path": self.drop_path, **kwargs}

    def build(self, **kwargs: Any) -> RevCol:
        """This size as a :class:`RevCol`; keyword arguments go to :class:`RevCol`."""
        return RevCol(**self.arguments(**kwargs))


#: name -> the published sizes
VARIANTS: dict[str, RevColVariant] = {
    "tiny": RevColVariant((64, 128, 256, 512), (2, 2, 4, 2), 4, 0.1, 30.5),
    "small": RevColVariant((64, 128, 256, 512), (2, 2, 4, 2), 8, 0.3, 60.6),
    "base": RevColVariant((72, 144, 288, 576), (1, 1, 3, 2), 16, 0.4, 138.6),
    "large": RevColVariant((128, 256, 512, 1024), (1, 2, 6, 2), 8, 0.5, 273.1),
    "xlarge": RevColVariant((224, 448, 896, 1792), (1, 2, 6, 2), 8, 0.5, 833.8),
}


def _build(name: str, kwargs: dict[str, Any]) -> RevCol:
    return VARIANTS[name].build(**kwargs)


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
