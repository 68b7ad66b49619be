"""Diff-CNN branch: motion cues from adjacent-frame differences, added to encoder features.

The extension feeds the differences of normalised frames through a small CNN,
pools the result to the patch grid, and adds a projection of it to each tapped
encoder feature map before the head. Two rules make it safe to bolt onto a
pretrained VDA:

- The projections are zero-initialised, so a model with an untrained branch is
  exactly the model without it.
- A difference is only taken between slots that are adjacent in time. Long-
  video inference splices key frames (frame 0, the frame 10 before the window)
  into each window, and the first slot of any clip has no predecessor; those
  slots get a zero difference rather than a meaningless one. Hence the branch
  takes each slot's true frame index.

GroupNorm rather than BatchNorm: DDP with a handful of clips per GPU makes
batch statistics noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def adjacent_differences(frames: torch.Tensor, frame_index: torch.Tensor | None) -> torch.Tensor:
    """x_t - x_{t-1} for slots whose predecessor is the previous frame in time, else 0.

    frames: (B, T, C, H, W); frame_index: (B, T) integer frame numbers, or None
    for clips of consecutive frames.
    """
    diffs = torch.zeros_like(frames)
    if frames.shape[1] < 2:
        return diffs
    step = frames[:, 1:] - frames[:, :-1]
    if frame_index is not None:
        adjacent = (frame_index[:, 1:] - frame_index[:, :-1]) == 1
        step = step * adjacent[..., None, None, None].to(step.dtype)
    diffs[:, 1:] = step
    return diffs


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    groups = min(8, c_out)
    while c_out % groups:
        groups -= 1
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
        nn.GroupNorm(groups, c_out),
        nn.GELU(),
    )


class DiffCNN(nn.Module):
    """Frame differences -> strided CNN -> patch grid -> one projection per tapped layer."""

    def __init__(self, embed_dim: int, channels: tuple[int, ...], num_taps: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers.append(_conv_block(c_in, c_out))
            c_in = c_out
        self.cnn = nn.Sequential(*layers)
        self.projections = nn.ModuleList([nn.Linear(c_in, embed_dim) for _ in range(num_taps)])
        for projection in self.projections:
            nn.init.zeros_(projection.weight)
            nn.init.zeros_(projection.bias)

    def forward(
        self,
        frames: torch.Tensor,
        frame_index: torch.Tensor | None,
        grid_h: int,
        grid_w: int,
    ) -> list[torch.Tensor]:
        """One (B*T, h*w, embed_dim) additive term per tapped encoder layer."""
        b, t = frames.shape[:2]
        diffs = adjacent_differences(frames, frame_index).flatten(0, 1)
        motion = self.cnn(diffs)
        motion = F.adaptive_avg_pool2d(motion, (grid_h, grid_w))
        motion = motion.flatten(2).transpose(1, 2)  # (B*T, h*w, C)
        assert motion.shape[0] == b * t
        return [projection(motion) for projection in self.projections]
