"""The sequential half of the windowing: raw window predictions in, final depths out.

The official algorithm's alignment (the overview is in `vda.model.inference`):
each window's predictions resized (bilinear, align_corners) to the frame
size; one least-squares scale and shift over the two key slots onto the
earlier predictions of the same frames (metric models skip it); the shared
frames blended linearly from the old to the new prediction; clamped at 0.

It is apart from the network because it needs nothing but raw windows, in
order: the bulk job computes the raw windows of a long video's segments on
several actors and runs only this part in its stitch. It also records each
window's scale, shift and key-frame fit residual, the quality signals of an
archive nobody can watch. The fit itself is `vda.model.affine`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..affine import fit_affine
from .config import WindowConfig


def fit_residual(
    prediction: torch.Tensor, reference: torch.Tensor, scale: float, shift: float
) -> float:
    """RMS of the fit's error relative to the reference's mean magnitude (0 = a perfect fit)."""
    error = prediction.double() * scale + shift - reference.double()
    magnitude = float(reference.double().abs().mean())
    return float(error.pow(2).mean().sqrt()) / magnitude if magnitude > 0 else 0.0


def blend_weights(count: int) -> torch.Tensor:
    """Weights of the new prediction across the shared frames: 0, 1/(n-1), ..., 1."""
    step = 1.0 / (count - 1)
    return torch.tensor([0.0] + [i * step for i in range(1, count - 1)] + [1.0])


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, h, w) network-resolution depth to (T, H, W) frame size, as the official code resizes."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    resized = F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=True)
    return resized[:, 0]


@dataclass
class RawWindow:
    """The network's prediction for one window, before alignment.

    `depth` is at the decoded frame size, or, from `raw_windows(native=True)`,
    still at the network's resolution (often several times smaller: what a
    split video stores between its segments and its stitch); `at_frame_size`
    resizes it then.
    """

    index: int  # window number: it starts at frame index * stride
    slot_frames: list[int]
    depth: torch.Tensor  # (length, h, w) float32, CPU
    frame_size: tuple[int, int] | None = None  # (H, W) to resize to, when depth is native

    def at_frame_size(self) -> RawWindow:
        if self.frame_size is None:
            return self
        return RawWindow(self.index, self.slot_frames, resize_depth(self.depth, self.frame_size))


@dataclass
class WindowAlignment:
    """How window `index` was fitted onto the earlier predictions of its key frames."""

    index: int
    scale: float
    shift: float
    residual: float


class WindowAligner:
    """The sequential half: raw windows in (in order), final (frame, depth) pairs out.

    It holds one window of state: the two key-frame references and the
    `interp` predictions waiting to be blended with the next window.
    """

    def __init__(self, window: WindowConfig, metric: bool = False) -> None:
        self.window = window
        self.metric = metric
        self.alignments: list[WindowAlignment] = []
        self._refs: list[torch.Tensor] = []
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._expected = 0

    def push(self, raw: RawWindow) -> list[tuple[int, torch.Tensor]]:
        """Align one window; returns the frames that are final now."""
        w = self.window
        if raw.index != self._expected:
            raise ValueError(f"window {raw.index} arrived, window {self._expected} was expected")
        self._expected += 1
        depth, slots = raw.depth, raw.slot_frames
        if raw.index == 0:
            aligned = depth
            self._refs = [depth[0], depth[w.key_slot]]
            finals = [(slots[i], aligned[i]) for i in range(w.length - w.interp)]
        else:
            reference = torch.stack(self._refs)
            if self.metric:
                scale, shift = 1.0, 0.0
            else:
                scale, shift = fit_affine(depth[:2], reference)
            residual = fit_residual(depth[:2], reference, scale, shift)
            self.alignments.append(WindowAlignment(raw.index, scale, shift, residual))
            aligned = (depth * scale + shift).clamp_min(0)
            weights = blend_weights(w.interp)
            shared = aligned[2 : w.overlap]
            blended = [
                (index, old * (1 - weights[i]) + shared[i] * weights[i])
                for i, (index, old) in enumerate(self._pending)
            ]
            fresh = [(slots[i], aligned[i]) for i in range(w.overlap, w.length - w.interp)]
            finals = blended + fresh
            self._refs = [self._refs[0], aligned[w.key_slot]]
        self._pending = [(slots[i], aligned[i]) for i in range(w.length - w.interp, w.length)]
        return finals

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """The last window's shared frames: final once no window follows."""
        pending, self._pending = self._pending, []
        return pending
