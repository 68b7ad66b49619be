"""Video Depth Anything: a DINOv2 encoder under a spatio-temporal DPT head.

`forward` is the whole network. The encoder and the head are also exposed
separately (`encode_frames`, `decode`) because long-video inference caches the
encoder features of frames that re-enter a window as context, and runs only
the head on them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import PATCH_SIZE, ModelConfig
from .diff_branch import DiffCNN
from .dpt import DPTHead, TemporalDPTHead
from .encoder import DinoV2Encoder


class VideoDepthAnything(nn.Module):
    """(B, T, 3, H, W) normalised frames -> (B, T, H, W) non-negative relative disparity.

    H and W must be multiples of 14 and T at most `config.num_frames` (32 for
    the official checkpoints). Metric checkpoints output depth in metres.
    """

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = replace(config or ModelConfig(), **overrides)
        self.config = config
        spec = config.encoder
        self.pretrained = DinoV2Encoder(spec)
        self.head: DPTHead = (
            TemporalDPTHead(spec.embed_dim, config.head, config.num_frames)
            if config.temporal
            else DPTHead(spec.embed_dim, config.head)
        )
        self.diff_cnn: DiffCNN | None = None
        if config.temporal_diff == "diff_cnn":
            self.diff_cnn = DiffCNN(spec.embed_dim, config.diff_cnn_channels)
        self._encoder_frozen = False
        if config.freeze_encoder:
            self.freeze_encoder()

    # -- training helpers -------------------------------------------------
    def freeze_encoder(self, frozen: bool = True) -> None:
        """Head-only training: the encoder gets no gradients and stays in eval mode."""
        self._encoder_frozen = frozen
        for parameter in self.pretrained.parameters():
            parameter.requires_grad_(not frozen)
        if frozen:
            self.pretrained.eval()

    def train(self, mode: bool = True) -> VideoDepthAnything:
        super().train(mode)
        if self._encoder_frozen:
            self.pretrained.eval()
        return self

    def set_trainable(self, mode: str) -> None:
        """Which parts learn: `head` (DPT head, temporal modules, diff-CNN; encoder frozen),
        `temporal` (temporal modules and diff-CNN only), or `all`.

        The unused `refinenet4.resConfUnit1` never requires grad: DDP would
        otherwise wait forever for its gradient.
        """
        if mode not in ("head", "temporal", "all"):
            raise ValueError(f"trainable must be 'head', 'temporal' or 'all', got {mode!r}")
        self.freeze_encoder(mode != "all")
        for name, parameter in self.named_parameters():
            if name.startswith("pretrained."):
                continue
            learns = mode != "temporal" or name.startswith(("head.motion_modules.", "diff_cnn."))
            parameter.requires_grad_(learns)
        for parameter in self.head.scratch.refinenet4.resConfUnit1.parameters():
            parameter.requires_grad_(False)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters an optimizer should own.

        Excludes the frozen encoder and the official head's `refinenet4.resConfUnit1`,
        which is kept for checkpoint compatibility but never used in the forward
        pass (DDP would otherwise wait for its gradient forever).
        """
        unused = set(map(id, self.head.scratch.refinenet4.resConfUnit1.parameters()))
        for parameter in self.parameters():
            if parameter.requires_grad and id(parameter) not in unused:
                yield parameter

    # -- the two halves -----------------------------------------------------
    @staticmethod
    def patch_grid(height: int, width: int) -> tuple[int, int]:
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"frame size {height}x{width} is not a multiple of {PATCH_SIZE}")
        return height // PATCH_SIZE, width // PATCH_SIZE

    def encode_frames(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> four (N, h*w, C) tapped encoder features. Cacheable per frame."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self._encoder_frozen):
            return self.pretrained.forward_taps(images, self.config.encoder.taps)

    def add_motion(
        self,
        features: list[torch.Tensor],
        frames: torch.Tensor,
        frame_index: torch.Tensor | None,
    ) -> list[torch.Tensor]:
        """Add the diff-CNN term (if any) to encoder features of the clips in `frames`."""
        if self.diff_cnn is None:
            return features
        grid_h, grid_w = self.patch_grid(*frames.shape[-2:])
        motion = self.diff_cnn(frames, frame_index, grid_h, grid_w)
        return [f + m.to(f.dtype) for f, m in zip(features, motion)]

    def decode(
        self,
        features: list[torch.Tensor],
        batch: int,
        frames: int,
        height: int,
        width: int,
        micro_batch: int | None = None,
        keep: int | None = None,
        memory: list[list[torch.Tensor]] | None = None,
        record: list[list[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Four (B*T, h*w, C) features -> (B, T, H, W) output of the head.

        With `keep`, (B, keep, H, W): the first `keep` frames of each clip,
        the others still seen by the temporal modules but not decoded.
        `memory` / `record`: the temporal modules' cache in the online mode
        (`TemporalDPTHead.forward`; temporal heads only).
        """
        if frames > self.config.num_frames:
            raise ValueError(
                f"clip of {frames} frames exceeds the model's {self.config.num_frames}-frame window"
            )
        grid_h, grid_w = self.patch_grid(height, width)
        streaming = (
            {} if memory is None and record is None else {"memory": memory, "record": record}
        )
        depth = self.head(
            features, grid_h, grid_w, frames=frames, micro_batch=micro_batch, keep=keep, **streaming
        )
        if depth.shape[-2:] != (height, width):
            depth = F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=True)
        decoded = frames if keep is None else min(keep, frames)
        return F.relu(depth).squeeze(1).reshape(batch, decoded, height, width)

    def forward(
        self,
        frames: torch.Tensor,
        frame_index: torch.Tensor | None = None,
        micro_batch: int | None = None,
    ) -> torch.Tensor:
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"expected (B, T, 3, H, W) frames, got {tuple(frames.shape)}")
        batch, length, _, height, width = frames.shape
        self.patch_grid(height, width)
        if length > self.config.num_frames:
            raise ValueError(
                f"clip of {length} frames exceeds the model's {self.config.num_frames}-frame window"
            )
        features = self.encode_frames(frames.flatten(0, 1))
        features = self.add_motion(features, frames, frame_index)
        return self.decode(features, batch, length, height, width, micro_batch)
