"""The least-squares scale and shift, `scale * prediction + shift ~ target`: vda's one fit.

Three places need it, and they share this module so that a fix reaches all of them:
the long-video engine aligns each window onto the previous window's shared frames
(`fit_affine`); the evaluation aligns a whole sequence, one frame at a time
(`AffineFit`); the TGM loss aligns each clip of a batch, differentiably
(`align_affine`). All three solve the centred form, scale = cov(p, t) /
var(p) and shift = mean(t) - scale * mean(p), which is the normal equations'
solution written so that fp32 keeps its digits when values sit far from zero.

**Degenerate input, one rule.** When the prediction has no spread over the
valid pixels (variance at most `DEGENERATE` = 1e-12 of its mean square: a spread
under a millionth of its magnitude, float32 rounding), every shift =
mean(t) - scale * mean(p) is a least-squares solution. The fit returns scale 1
and that shift: the prediction keeps its own scale and moves onto the target's
mean. Where this differs from the official code: its engine keeps (1, 0) when
its float32 determinant is exactly 0 (the window then stays where the network
put it instead of joining the previous one); its metrics and losses have no
rule. No valid pixel at all: `AffineFit.solve` raises, the batched fit returns
(1, 0) for that clip (whose pixels count nowhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

DEGENERATE = 1e-12  # variance / mean square at or below which the prediction has no spread


def _solve(mean_p, mean_t, variance, covariance, mean_square):
    """The centred solution and the degenerate rule, for floats or tensors alike."""
    if isinstance(variance, torch.Tensor):
        spread = variance > DEGENERATE * mean_square
        safe = torch.where(spread, variance, torch.ones_like(variance))
        scale = torch.where(spread, covariance / safe, torch.ones_like(variance))
    else:
        scale = covariance / variance if variance > DEGENERATE * mean_square else 1.0
    return scale, mean_t - scale * mean_p


@dataclass
class AffineFit:
    """Float64 sums of one fit, added to piece by piece (a sequence's frames, say).

    Accepts numpy arrays and torch tensors; `valid` (same shape, bool) picks the
    pixels that count, all of them when None.
    """

    n: float = 0.0
    sp: float = 0.0
    st: float = 0.0
    spp: float = 0.0
    spt: float = 0.0

    def add(self, prediction: Any, target: Any, valid: Any = None) -> None:
        p, t = _float64(prediction), _float64(target)
        if valid is not None:
            p, t = p[valid], t[valid]
        self.n += p.size if isinstance(p, np.ndarray) else p.numel()
        self.sp += float(p.sum())
        self.st += float(t.sum())
        self.spp += float((p * p).sum())
        self.spt += float((p * t).sum())

    def solve(self) -> tuple[float, float]:
        if self.n == 0:
            raise ValueError("no valid pixels to align on")
        mean_p, mean_t = self.sp / self.n, self.st / self.n
        mean_square = self.spp / self.n
        variance = max(mean_square - mean_p * mean_p, 0.0)
        covariance = self.spt / self.n - mean_p * mean_t
        scale, shift = _solve(mean_p, mean_t, variance, covariance, mean_square)
        return float(scale), float(shift)


def fit_affine(prediction: Any, target: Any, valid: Any = None) -> tuple[float, float]:
    """(scale, shift) over every pixel (or the `valid` ones), in float64."""
    fit = AffineFit()
    fit.add(prediction, target, valid)
    return fit.solve()


def align_affine(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...]
) -> torch.Tensor:
    """The prediction fitted onto the target, one fit per item over `dims`, in its dtype.

    Differentiable (the TGM loss's gradient flows through the fit). Returned as
    scale * (p - mean(p)) + mean(t), equal to scale * p + shift, which keeps fp32's
    digits where p sits far from zero.
    """
    maskf = mask.to(prediction.dtype)
    count = maskf.sum(dims, keepdim=True).clamp_min(1)
    mean_p = (prediction * maskf).sum(dims, keepdim=True) / count
    mean_t = (target * maskf).sum(dims, keepdim=True) / count
    centred_p = (prediction - mean_p) * maskf
    variance = (centred_p * centred_p).sum(dims, keepdim=True) / count
    covariance = (centred_p * (target - mean_t) * maskf).sum(dims, keepdim=True) / count
    mean_square = (prediction * prediction * maskf).sum(dims, keepdim=True) / count
    scale, _ = _solve(mean_p, mean_t, variance, covariance, mean_square)
    return (prediction - mean_p) * scale + mean_t


def _float64(values: Any) -> Any:
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.float64)
    return np.asarray(values, dtype=np.float64)
