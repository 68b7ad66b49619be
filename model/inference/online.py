"""Online (streaming) depth: one frame in, its depth out, before the next frame is read.

The official online mode (Video Depth Anything `infer_video_depth_one`,
`run_streaming.py`) runs the encoder on the new frame only. Its temporal
attentions attend from the new frame to the inputs they saw for 31 earlier
frames, cached, so the head never recomputes the past. Which 31 is the
official schedule (`OnlineSchedule`):

- the first frame runs alone, as a one-frame clip; the transform (input size
  with the aspect guard) is fixed by its shape, and every later frame must
  have it;
- a list of cached frames starts as `length` (32) copies of the first frame;
  each frame is appended after its depth is computed, and once the list
  passes `2 * stride - 2` (42) entries its second entry is dropped;
- a frame attends to the list's first two entries (the first frame, and the
  oldest kept frame: 41 frames back once the stream is long enough) and its
  last `length - 3` (29) entries, then itself: 32 positions, as in a window.

How it differs from the offline (windowed) engine: no frame ever sees a
later one, the context frames' cached states were computed when they were
new (with their own, older context) rather than again beside the current
frame, and nothing aligns one frame's scale and shift to another's; each
depth is the network's raw output. That is what bounds the latency to one
frame's network pass and the memory to 42 frames of temporal state, and
what costs accuracy (the official README: ScanNet delta1 0.926 offline vs
0.836 online for the Large model).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..network import VideoDepthAnything
from ..precision import Precision, autocast_dtype, precision_used
from ..transforms import DEFAULT_INPUT_SIZE, effective_input_size, preprocess_frames
from .alignment import resize_depth
from .config import WindowConfig

# One frame's temporal state: per motion module, per attention, (h*w, 1, C) inputs.
FrameState = list[list[torch.Tensor]]


class OnlineSchedule:
    """Which earlier frames a new frame attends to: the official online list rules,
    kept as frame numbers (the states themselves live in the engine)."""

    def __init__(self, window: WindowConfig | None = None) -> None:
        window = window or WindowConfig()
        self.initial_copies = window.length
        self.keys = window.overlap - window.interp  # entries kept from the list's head: 2
        self.recent = window.length - 1 - self.keys  # entries from its tail: 29
        self.limit = 2 * window.stride - 2  # most entries the list holds: 42
        self.entries: list[int] = []

    def context(self) -> list[int]:
        """The frames the next frame attends to, oldest position first (31 of them)."""
        return self.entries[: self.keys] + self.entries[-self.recent :]

    def add(self, frame: int) -> None:
        """Record that `frame` now has a cached state (the first one fills the list)."""
        if not self.entries:
            self.entries = [frame] * self.initial_copies
            return
        self.entries.append(frame)
        if len(self.entries) > self.limit:
            del self.entries[1]

    def kept(self) -> set[int]:
        return set(self.entries)


class OnlineDepthEngine:
    """`step(frame)` -> that frame's depth, with the official online mode's cache.

    Frames are RGB uint8 (H, W, 3) arrays, all of the first one's size;
    depths are float32 (H, W), relative disparity (metric models: metres).
    Memory is the temporal state of at most 42 frames, whatever the stream's
    length. `reset()` starts a new stream.
    """

    def __init__(
        self,
        model: VideoDepthAnything,
        input_size: int = DEFAULT_INPUT_SIZE,
        precision: Precision = "auto",
        device: torch.device | str | None = None,
        window: WindowConfig | None = None,
    ) -> None:
        if not isinstance(model, VideoDepthAnything):
            raise ValueError(
                "the online mode needs the PyTorch network (an ONNX export has no temporal cache)"
            )
        self.window = window or WindowConfig()
        if self.window.length > model.config.num_frames:
            raise ValueError(
                f"window length {self.window.length} exceeds the model's "
                f"{model.config.num_frames} frames"
            )
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.model = model.to(self.device).eval()
        self.input_size = input_size
        self.autocast = autocast_dtype(precision, self.device)
        self.precision = precision_used(precision, self.device)
        self.temporal = model.config.temporal
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next frame is a first frame."""
        self.frames = 0
        self.frame_size: tuple[int, int] | None = None
        self._input_size = self.input_size
        self._schedule = OnlineSchedule(self.window)
        self._states: dict[int, FrameState] = {}
        self._previous: torch.Tensor | None = None  # the diff-CNN's previous frame

    @property
    def cached_frames(self) -> int:
        """Frames whose temporal state is held (at most 42 distinct ones)."""
        return len(self._states)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _memory(self) -> list[list[torch.Tensor]] | None:
        """Per motion module and attention, the context frames' states side by side in time."""
        if not self._states or not self.temporal:
            return None
        states = [self._states[frame] for frame in self._schedule.context()]
        return [
            [torch.cat([state[m][a] for state in states], dim=1) for a in range(len(module))]
            for m, module in enumerate(states[0])
        ]

    @torch.inference_mode()
    def step(self, frame: np.ndarray) -> np.ndarray:
        """The depth of `frame`, given every frame stepped before it since `reset`."""
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
        size = (int(frame.shape[0]), int(frame.shape[1]))
        if self.frame_size is None:
            self.frame_size = size
            self._input_size = effective_input_size(*size, self.input_size)
        elif size != self.frame_size:
            raise ValueError(
                f"frame {self.frames} is {size[0]}x{size[1]}, the stream started at "
                f"{self.frame_size[0]}x{self.frame_size[1]}: one stream has one frame size"
            )
        image = preprocess_frames(frame[None], self._input_size, apply_aspect_guard=False)
        image = image.to(self.device)
        height, width = image.shape[-2:]
        grid_h, grid_w = self.model.patch_grid(height, width)
        memory = self._memory()
        record: FrameState = [[] for _ in range(4)] if self.temporal else []
        with self._autocast():
            features = self.model.encode_frames(image)
            if self.model.diff_cnn is not None:
                clip = image if self._previous is None else torch.cat([self._previous, image])
                motion = self.model.diff_cnn(clip[None], None, grid_h, grid_w)
                features = [f + m[-1:].to(f.dtype) for f, m in zip(features, motion)]
            depth = self.model.decode(
                features,
                1,
                1,
                height,
                width,
                memory=memory,
                record=record if self.temporal else None,
            )
        depth = resize_depth(depth[0].float(), size)
        self._remember(record, image)
        return depth[0].cpu().numpy()

    def _remember(self, record: FrameState, image: torch.Tensor) -> None:
        index = self.frames
        self.frames += 1
        if self.model.diff_cnn is not None:
            self._previous = image
        if not self.temporal:
            return
        self._states[index] = record
        self._schedule.add(index)
        kept = self._schedule.kept()
        for frame in [f for f in self._states if f not in kept]:
            del self._states[frame]
