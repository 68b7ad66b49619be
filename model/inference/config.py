"""The windowing's geometry and the engine's settings: what a run is configured with.

Apart from the network and the alignment because the bulk job reads them
without running either: its config carries `SpeedOptions`, and its planner
of video segments and its stitch (`platform/infer`) ask which frame sits in
which slot of which window. The defaults are the official numbers (32 slots,
8 shared frames, the key frame 10 before the window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..precision import Precision
from ..transforms import DEFAULT_INPUT_SIZE


@dataclass
class WindowConfig:
    """Geometry of the sliding windows (official defaults)."""

    length: int = 32
    interp: int = 8
    key_offset: int = 10

    @property
    def overlap(self) -> int:
        """Context slots: the two key frames plus the shared frames."""
        return self.interp + 2

    @property
    def stride(self) -> int:
        return self.length - self.overlap

    def start(self, window: int) -> int:
        """The first frame of window `window` (its first new frame is `start + overlap`)."""
        return window * self.stride

    def slot_frames(self, window: int) -> list[int]:
        """The frame each slot of window `window` holds (frames past the end are padding)."""
        start = self.start(window)
        if window == 0:
            return list(range(self.length))
        return [0, start - self.key_offset, *range(start + 2, start + self.length)]

    def window_count(self, frames: int) -> int:
        """Windows the engine runs for a video of `frames` frames (one more starts while
        frame `start` exists)."""
        return max(1, math.ceil(frames / self.stride))

    @property
    def key_slot(self) -> int:
        """The slot of a window that becomes the next window's second key frame."""
        return self.stride - self.key_offset

    def __post_init__(self) -> None:
        if self.interp < 2:
            raise ValueError(f"window.interp must be at least 2, got {self.interp}")
        if self.stride < 1:
            raise ValueError(
                f"window.length {self.length} leaves no new frames after {self.overlap} context slots"
            )
        if not self.overlap <= self.key_slot < self.length:
            raise ValueError(
                f"window.key_offset {self.key_offset} must put the second key frame among a "
                f"window's new frames (stride {self.stride} - key_offset >= overlap {self.overlap})"
            )


@dataclass
class SpeedOptions:
    """The engine's speed levers, each measured by `vda bench inference` (docs/benchmarks.md).

    None changes the depth beyond float32 rounding (tests hold every one to
    1e-5 of the depth range against `baseline()`). Defaults are what paid on
    the machines measured; a lever that did not pay is off.
    """

    # The head's weights in channels-last layout: oneDNN's convolutions then skip a
    # layout conversion per call (1.3-1.5x on the head on CPU).
    channels_last: bool = True
    # Padding slots of a video's last window are copies of its last frame: encode the
    # copy once, and skip their high-resolution head stages (their depth is never
    # output; the temporal modules still see all slots).
    skip_padding: bool = True
    # torch.compile (inductor) of the encoder and the head, shapes fixed per video
    # resolution. CPU: 1.1x on the encoder, nothing on the head, ~70 s of compiling
    # per resolution for vits, so off. GPU: unmeasured (no device yet).
    compile: bool = False
    # Frames per encoder call and per high-resolution head call; 0: per device
    # (CPU 1 and 2: small batches stay in cache; CUDA 8 and 4).
    encoder_batch: int = 0
    head_micro_batch: int = 0
    # CUDA: copy inputs from pinned memory without blocking the host.
    pin_memory: bool = True

    @classmethod
    def baseline(cls) -> SpeedOptions:
        """The engine before any lever (eager, NCHW, padding computed, batches 8 and 4):
        what the speed-ups are measured against."""
        return cls(
            channels_last=False,
            skip_padding=False,
            compile=False,
            encoder_batch=8,
            head_micro_batch=4,
            pin_memory=False,
        )

    def batches(self, device: torch.device) -> tuple[int, int]:
        """(encoder frames per call, head frames per call) on `device`."""
        cuda = device.type == "cuda"
        return (
            self.encoder_batch or (8 if cuda else 1),
            self.head_micro_batch or (4 if cuda else 2),
        )

    def __post_init__(self) -> None:
        if self.encoder_batch < 0 or self.head_micro_batch < 0:
            raise ValueError("speed.encoder_batch and speed.head_micro_batch must be >= 0")


@dataclass
class InferenceConfig:
    window: WindowConfig = field(default_factory=WindowConfig)
    input_size: int = DEFAULT_INPUT_SIZE
    precision: Precision = "auto"  # auto: fp16 on CUDA (as the official code), fp32 on CPU
    cache_encoder: bool = True
    speed: SpeedOptions = field(default_factory=SpeedOptions)
