"""Training loss of RevCol with intermediate supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RevColLoss", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RevColLoss(nn.Module):
    r"""Compound loss of RevCol's intermediate supervision (official weights).

    With heads :math:`y_0..y_3` and reconstructions :math:`r_0..r_2`:

    .. math::
        L = \sum_{i=0}^{2} \Big[\mathrm{BCE}(r_i, \hat x)\,(1 - \tfrac{i}{3})\, f
            + \mathrm{CE}(y_i, t)\, \tfrac{i + 1}{4}\, c\Big] + \mathrm{CE}(y_3, t)

    where :math:`\hat x` is the input de-normalised and clamped to [0.01, 0.99], BCE is
    binary cross-entropy with logits, :math:`f = 3.0`, :math:`c = 0.7`. Given plain logits (a
    model without ``inter_supv``, or in eval mode) it is the cross-entropy.

    Args:
        feature_coef: weight :math:`f` of the reconstruction terms. Default: 3.0
        class_coef: weight :math:`c` of the intermediate classification terms. Default: 0.7
        mean: per-channel mean used to normalise the images; ``None`` if the model sees images
            in [0, 1]. Default: ImageNet mean
        std: per-channel std used to normalise the images. Default: ImageNet std
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`. Default: 0.0

    Shape:
        - outputs: what :class:`~revact.revcol.RevCol` returns in training mode: a tuple
          ``(list of logits (N, K), list of images (N, C, H, W))``, or logits :math:`(N, K)`.
        - images: the model's input :math:`(N, C, H, W)`.
        - targets: class indices :math:`(N,)` or class probabilities :math:`(N, K)` (mixup).
        - Output: scalar. The individual terms of the last call are in ``self.last_terms``.

    Examples::

        >>> model = RevCol((8, 16, 32, 64), (1, 1, 1, 1), 4, num_classes=10, inter_supv=True)
        >>> criterion = RevColLoss()
        >>> loss = criterion(model(images), images, targets)
        >>> loss.backward()
    """

    def __init__(
        self,
        feature_coef: float = 3.0,
        class_coef: float = 0.7,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.feature_coef, self.class_coef = float(feature_coef), float(class_coef)
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)
        self.label_smoothing = float(label_smoothing)
        self.last_terms: list[Tensor] = []

    def _ce(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)

    def image_target(self, images: Tensor) -> Tensor:
        """The reconstruction target: images de-normalised and clamped to [0.01, 0.99]."""
        x = images.detach().float()
        if self.mean is not None:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mean = torch.tensor(self.mean, device=x.device).view(shape)
            std = torch.tensor(self.std, device=x.device).view(shape)
            x = x * std + mean
        return x.clamp(0.01, 0.99)

    def forward(
        self, outputs: Tensor | tuple[Sequence[Tensor], Sequence[Tensor]], images: Tensor,
        targets: Tensor,
    ) -> Tensor:
        if isinstance(outputs, Tensor):
            loss = self._ce(outputs, targets)
            self.last_terms = [loss.detach()]
            return loss
        logits, recons = outputs
        if len(logits) != len(recons) + 1:
            raise ValueError(
                f"expected one more head than reconstructions, got {len(logits)} and {len(recons)}"
            )
        target = self.image_target(images) if recons else None
        terms = []
        for i, rec in enumerate(recons):
            bce = F.binary_cross_entropy_with_logits(rec.float(), target)
            ce = self._ce(logits[i], targets)
            terms.append(bce * (1 - i / len(recons)) * self.feature_coef
                         + ce * ((i + 1) / len(logits)) * self.class_coef)
        terms.append(self._ce(logits[-1], targets))
        self.last_terms = [t.detach() for t in terms]
        return torch.stack(terms).sum()
