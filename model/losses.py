"""Training objective: scale-and-shift-invariant spatial loss plus temporal gradient matching.

Everything works in disparity space (the network predicts relative
disparity); the clip pipeline gives ground truth as disparity (1 / depth on
valid pixels, `vda.platform.data.pipeline`).
Shapes: prediction, target and mask are (B, T, H, W); a clip of T = 1 is an
image (no temporal term).

Reductions are "batch-based" as in MiDaS: numerators and valid-pixel counts
are summed over every frame of the batch before dividing, so a frame (or a
whole clip) without valid pixels contributes nothing, and a batch without any
gives exactly 0 rather than NaN. Everything is computed in fp32 with autocast
disabled: fp16 underflows the eps terms and bf16 loses the medians.

The defaults reproduce the official release's `VideoDepthLoss` (loss/loss.py)
term for term, since the released weights were trained with it:
`SSI + 10 * TGM` (`stable_scale = 10`), the SSI normalisation's median taken
over `mask * target` on every pixel of a frame (masked-out pixels count as
zeros; `median: valid` takes the median of valid pixels only, as MiDaS
describes it), the TGM threshold 5% of the target range of the *later* frame
of each pair, and trimming (0 there) over the smallest residuals of the whole
batch, divided by the batch's valid-pixel count.

TGM variants (`LossConfig.tgm_variant`):
- `paper`: `| |d_{i+1}-d_i| - |g_{i+1}-g_i| |` on pixels valid in both frames
  whose target changes by less than an absolute threshold (0.05).
- `official` (the default): signed differences `|(d_{i+1}-d_i) - (g_{i+1}-g_i)|`,
  masked where the target change is below 5% of frame i+1's target range.
Both first map the prediction onto the target with one least-squares scale and
shift per clip, because a relative-disparity prediction has no scale of its
own to compare temporal changes against. The official variant is the default
because it is what the released checkpoints were trained with, because
signed differences also penalise a prediction that moves opposite to the
ground truth by the same amount (the paper's absolute values cannot see that),
and because a threshold relative to each frame's range means the same thing
for every data set's disparity units, where 0.05 absolute does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .affine import align_affine

EPS = 1e-6  # representable in fp32 (and fp16); 1e-8 would underflow in half precision

TGMVariant = Literal["official", "paper"]
MedianMode = Literal["official", "valid"]


@dataclass
class LossConfig:
    """Weights and switches of the training loss (`alpha * TGM + beta * SSI`).

    Defaults: the official release's `VideoDepthLoss`.
    """

    ssi_weight: float = 1.0  # beta
    tgm_weight: float = 10.0  # alpha: the official `stable_scale`
    gradient_weight: float = 0.5  # the multi-scale gradient term inside SSI
    gradient_scales: int = 4
    trim: float = 0.0  # share of the batch's largest SSI residuals dropped (MiDaS: 0.2)
    median: MedianMode = "official"  # official: median of mask * target over all pixels
    tgm_variant: TGMVariant = "official"
    tgm_threshold: float = 0.05  # paper: absolute; official: relative to the later frame's range

    def __post_init__(self) -> None:
        if not 0.0 <= self.trim < 1.0:
            raise ValueError(f"loss.trim must be in [0, 1), got {self.trim}")
        if self.tgm_variant not in ("official", "paper"):
            raise ValueError(
                f"loss.tgm_variant must be 'official' or 'paper', got {self.tgm_variant!r}"
            )
        if self.gradient_scales < 1:
            raise ValueError("loss.gradient_scales must be at least 1")
        if self.median not in ("official", "valid"):
            raise ValueError(f"loss.median must be 'official' or 'valid', got {self.median!r}")


def _fp32(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.float() for t in tensors]


def masked_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Lower median of each row's masked entries (torch.median's convention); 0 for empty rows.

    values, mask: (N, P). A per-row sort, not `torch.quantile`, which refuses
    inputs beyond 2**24 elements.
    """
    filled = torch.where(mask, values, torch.full_like(values, float("inf")))
    ordered, _ = filled.sort(dim=1)
    count = mask.sum(dim=1)
    index = ((count - 1).clamp_min(0) // 2).unsqueeze(1)
    median = ordered.gather(1, index).squeeze(1)
    return torch.where(count > 0, median, torch.zeros_like(median))


def normalise_per_frame(
    values: torch.Tensor, mask: torch.Tensor, median: MedianMode = "official"
) -> torch.Tensor:
    """(x - median) / mean|x - median| over each frame's valid pixels (MiDaS normalisation).

    values, mask: (N, P). Invalid pixels come out as 0. `median="official"`
    takes the (lower) median of `mask * values` over all P pixels, as the
    official code does, so masked-out pixels count as zeros; `"valid"` takes
    it over the valid pixels only. A frame with no valid pixel has median 0.
    """
    maskf = mask.to(values.dtype)
    if median == "official":
        any_valid = mask.any(dim=1)
        everything = torch.ones_like(mask)
        shift = torch.where(any_valid, masked_median(values * maskf, everything), 0.0)
        shift = shift.unsqueeze(1)
    else:
        shift = masked_median(values, mask).unsqueeze(1)
    count = maskf.sum(dim=1, keepdim=True)
    scale = ((values - shift).abs() * maskf).sum(dim=1, keepdim=True) / count.clamp_min(1)
    return (values - shift) / scale.clamp_min(EPS) * maskf


def _trimmed_abs_residual(residual: torch.Tensor, mask: torch.Tensor, trim: float):
    """(sum of the smallest (1 - trim) share of the batch's valid |residual|, valid count).

    As the official `TrimmedMAELoss`: one sort over every valid pixel of the
    batch (not per frame), `int(n * (1 - trim))` kept, and the sum divided
    by all n valid pixels, not by the kept ones.
    """
    absolute = residual.abs()
    if trim <= 0.0:
        return (absolute * mask).sum(), mask.sum()
    values = absolute[mask]
    keep = int(values.numel() * (1.0 - trim))
    ordered, _ = values.sort()
    return ordered[:keep].sum(), mask.sum()


def gradient_matching(residual: torch.Tensor, mask: torch.Tensor, scales: int) -> torch.Tensor:
    """Multi-scale gradient term of the normalised residual (MiDaS), (N, H, W) inputs.

    At scale k the maps are subsampled with stride 2**k; x and y differences of
    the residual count where both pixels are valid; each scale is normalised by
    its valid-pixel count; the scales are summed.
    """
    total = residual.new_zeros(())
    for k in range(scales):
        step = 2**k
        r = residual[:, ::step, ::step]
        m = mask[:, ::step, ::step].to(r.dtype)
        grad_x = (r[:, :, 1:] - r[:, :, :-1]).abs() * m[:, :, 1:] * m[:, :, :-1]
        grad_y = (r[:, 1:, :] - r[:, :-1, :]).abs() * m[:, 1:, :] * m[:, :-1, :]
        total = total + (grad_x.sum() + grad_y.sum()) / m.sum().clamp_min(1)
    return total


def ssi_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    config: LossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Scale-and-shift-invariant loss per frame: MAE of normalised maps + gradient term.

    Returns `ssi` (total), `ssi_mae` and `ssi_grad`. Invariant to a * prediction + b
    for any a > 0 and b, per frame.
    """
    config = config or LossConfig()
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        prediction, target = _fp32(prediction, target)
        height, width = prediction.shape[-2:]
        mask = mask.bool().reshape(-1, height * width)
        pred_n = normalise_per_frame(prediction.reshape(-1, height * width), mask, config.median)
        target_n = normalise_per_frame(target.reshape(-1, height * width), mask, config.median)
        residual = pred_n - target_n
        total_abs, count = _trimmed_abs_residual(residual, mask, config.trim)
        mae = total_abs / count.clamp_min(1)
        grad = gradient_matching(
            residual.reshape(-1, height, width),
            mask.reshape(-1, height, width),
            config.gradient_scales,
        )
        return {"ssi": mae + config.gradient_weight * grad, "ssi_mae": mae, "ssi_grad": grad}


def tgm_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    config: LossConfig | None = None,
) -> torch.Tensor:
    """Temporal gradient matching on adjacent frame pairs; 0 for T < 2 or no valid pairs."""
    config = config or LossConfig()
    if prediction.shape[1] < 2:
        return prediction.new_zeros((), dtype=torch.float32)
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        prediction, target = _fp32(prediction, target)
        mask = mask.bool()
        aligned = align_affine(prediction, target, mask, dims=(1, 2, 3))  # one fit a clip
        d_pred = aligned[:, 1:] - aligned[:, :-1]
        d_target = target[:, 1:] - target[:, :-1]
        pair = mask[:, 1:] & mask[:, :-1]
        if config.tgm_variant == "paper":
            pair = pair & (d_target.abs() < config.tgm_threshold)
            residual = (d_pred.abs() - d_target.abs()).abs()
        else:
            high = torch.where(mask, target, torch.full_like(target, -float("inf"))).amax((2, 3))
            low = torch.where(mask, target, torch.full_like(target, float("inf"))).amin((2, 3))
            frame_range = torch.nan_to_num(high - low, nan=0.0, posinf=0.0, neginf=0.0)
            # official: `target_th[:, 1:]`, the range of the later frame of each pair
            limit = config.tgm_threshold * frame_range[:, 1:, None, None]
            pair = pair & (d_target.abs() < limit)
            residual = (d_pred - d_target).abs()
        pairf = pair.to(residual.dtype)
        return (residual * pairf).sum() / pairf.sum().clamp_min(1)


def total_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    config: LossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """`loss = tgm_weight * TGM + ssi_weight * SSI`, with every term returned for logging.

    T = 1 clips (pseudo-labelled images) get the SSI term only.
    """
    config = config or LossConfig()
    terms = ssi_loss(prediction, target, mask, config)
    terms["tgm"] = tgm_loss(prediction, target, mask, config)
    terms["loss"] = config.ssi_weight * terms["ssi"] + config.tgm_weight * terms["tgm"]
    return terms
