"""Model configuration: the sizes of the official release plus a tiny test size.

The numbers here are facts of the official checkpoints (read from the released
state dicts and the official model code):
changing any of them for `vits`/`vitb`/`vitl` breaks checkpoint compatibility.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ModelSize = Literal["tiny", "vits", "vitb", "vitl"]
TemporalDiff = Literal["none", "diff_cnn"]

PATCH_SIZE = 14
# DINOv2 was pre-trained on 518 px crops: 37 x 37 patches, plus one class token.
PRETRAIN_GRID = 37
# The temporal position encoding of the official checkpoints holds 32 frames.
MAX_FRAMES = 32


@dataclass(frozen=True)
class EncoderSpec:
    """Shape of one DINOv2 ViT/14 variant and where the DPT head taps it."""

    embed_dim: int
    depth: int
    num_heads: int
    taps: tuple[int, int, int, int]
    timm_name: str | None  # the timm architecture name, for timm weights


@dataclass(frozen=True)
class HeadSpec:
    """Widths of the DPT head for one size."""

    features: int
    out_channels: tuple[int, int, int, int]


ENCODERS: dict[str, EncoderSpec] = {
    "tiny": EncoderSpec(32, 4, 2, (0, 1, 2, 3), None),
    "vits": EncoderSpec(384, 12, 6, (2, 5, 8, 11), "vit_small_patch14_dinov2"),
    "vitb": EncoderSpec(768, 12, 12, (2, 5, 8, 11), "vit_base_patch14_dinov2"),
    "vitl": EncoderSpec(1024, 24, 16, (4, 11, 17, 23), "vit_large_patch14_dinov2"),
}

HEADS: dict[str, HeadSpec] = {
    # GroupNorm(32) in the temporal modules needs every width divisible by 32.
    "tiny": HeadSpec(32, (32, 32, 64, 64)),
    "vits": HeadSpec(64, (48, 96, 192, 384)),
    "vitb": HeadSpec(128, (96, 192, 384, 768)),
    "vitl": HeadSpec(256, (256, 512, 1024, 1024)),
}


@dataclass
class ModelConfig:
    """Everything needed to build a `VideoDepthAnything` with the right shapes.

    `metric` marks checkpoints that predict depth in metres rather than relative
    disparity; it changes long-video inference (no scale/shift alignment), not
    the network. `temporal=False` is the image model: the plain Depth Anything V2
    DPT head with no temporal modules, the honest per-frame baseline.
    """

    size: ModelSize = "vits"
    temporal_diff: TemporalDiff = "none"
    num_frames: int = MAX_FRAMES
    metric: bool = False
    diff_cnn_channels: tuple[int, ...] = field(default=(16, 32, 64))
    freeze_encoder: bool = True
    temporal: bool = True

    def __post_init__(self) -> None:
        if self.size not in ENCODERS:
            raise ValueError(f"model.size must be one of {sorted(ENCODERS)}, got {self.size!r}")
        if self.temporal_diff not in ("none", "diff_cnn"):
            raise ValueError(
                f"model.temporal_diff must be 'none' or 'diff_cnn', got {self.temporal_diff!r}"
            )
        if not 1 <= self.num_frames <= MAX_FRAMES:
            raise ValueError(
                f"model.num_frames must be in [1, {MAX_FRAMES}] (the temporal position "
                f"encoding of the official checkpoints holds {MAX_FRAMES}), got {self.num_frames}"
            )
        self.diff_cnn_channels = tuple(int(c) for c in self.diff_cnn_channels)

    @property
    def encoder(self) -> EncoderSpec:
        return ENCODERS[self.size]

    @property
    def head(self) -> HeadSpec:
        return HEADS[self.size]
