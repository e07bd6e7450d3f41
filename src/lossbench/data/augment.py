"""Batch augmentation on the device: random crop with padding + horizontal flip, vectorised."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class RandomCropFlip:
    """`RandomCrop(H, padding)` + `RandomHorizontalFlip(0.5)` for a whole batch (N, C, H, W) at once.

    The torchvision pipeline of the LDAM-DRW reference pads the raw image with black (0) before
    `Normalize`; on normalised tensors black is `(0 - mean) / std`, so that is the padding value `fill`
    (one per channel). Each example gets its own offsets in [0, 2 * padding] and its own flip, drawn from
    torch's global generator on the batch's device (the run seeds it), and is cut out with one gather.

    Args:
        padding: Pixels of padding on each side (4 for CIFAR).
        fill: Padding value per channel (in the tensor's units), or one value for all channels.
        flip: Also flip horizontally with probability 0.5.
    """

    def __init__(self, padding: int = 4, fill: Sequence[float] | float = 0.0, flip: bool = True) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding, self.flip = padding, flip
        self.fill = [float(fill)] if isinstance(fill, int | float) else [float(f) for f in fill]

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augmented copy of `x` (N, C, H, W), same shape and dtype.

        Draws from `generator` (on `x`'s device) when given, else from torch's global generator.
        """
        n, c, h, w = x.shape
        p = self.padding
        fill = torch.as_tensor(self.fill, dtype=x.dtype, device=x.device).expand(c).view(1, c, 1, 1)
        out = x
        if p > 0:
            padded = F.pad(x - fill, (p, p, p, p)) + fill  # constant `fill` border, per channel
            dy = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=generator)
            dx = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=generator)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chan = torch.arange(c, device=x.device)[None, :, None, None]
            out = padded[batch, chan, rows, cols]
        if self.flip:
            mask = torch.rand(n, device=x.device, generator=generator) < 0.5
            out = torch.where(mask[:, None, None, None], out.flip(3), out)
        return out

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"
