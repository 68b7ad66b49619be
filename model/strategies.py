"""Ways to run a 32-frame model over a long video, for evaluation side by side.

`keyframes` is the production path (`StreamingDepthEngine`: overlap
interpolation plus key-frame referencing, as the paper infers). The others
are the baselines the paper's ablation compares it with, kept simple and
in memory because they exist to be measured, not deployed:

- `per_frame`: every frame alone (T = 1): image depth, no temporal context.
- `independent_windows`: back-to-back windows, no overlap, each window's
  relative depth on its own scale.
- `aligned_windows`: windows overlapping by `window.interp` frames; each new
  window is scale-shift aligned to the frames it shares with the output so
  far, then only its new frames are kept (no blending, no key frames).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .affine import fit_affine
from .inference import InferenceConfig, StreamingDepthEngine
from .network import VideoDepthAnything
from .precision import autocast_dtype
from .transforms import preprocess_frames

Strategy = Literal["keyframes", "aligned_windows", "independent_windows", "per_frame"]
STRATEGIES: tuple[str, ...] = ("keyframes", "aligned_windows", "independent_windows", "per_frame")


@torch.inference_mode()
def predict_window(
    model: VideoDepthAnything, frames: np.ndarray, config: InferenceConfig, device: torch.device
) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, H, W) float32 depth of one window, at the frames' size.

    T = 1 is the image model: what `per_frame` runs and what a teacher labels images with.
    """
    device = torch.device(device)
    inputs = preprocess_frames(frames, config.input_size).to(device)
    index = torch.arange(len(frames), device=device)[None]
    dtype = autocast_dtype(config.precision, device)
    _, micro_batch = config.speed.batches(device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        depth = model(inputs[None], index, micro_batch=micro_batch)[0].float()
    depth = F.interpolate(
        depth[:, None], size=frames.shape[1:3], mode="bilinear", align_corners=True
    )
    return depth[:, 0].cpu()


def _padded(frames: np.ndarray, start: int, length: int) -> np.ndarray:
    """frames[start:start+length], padded with the last frame as the official code pads."""
    chunk = frames[start : start + length]
    if len(chunk) < length:
        chunk = np.concatenate([chunk, np.repeat(frames[-1:], length - len(chunk), axis=0)])
    return chunk


def predict_video(
    model: VideoDepthAnything,
    frames: np.ndarray,
    strategy: Strategy = "keyframes",
    config: InferenceConfig | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """(T, H, W, 3) uint8 frames -> (T, H, W) float32 relative disparity (or metric depth)."""
    config = config or InferenceConfig()
    device = torch.device(device)
    model = model.to(device).eval()
    total = len(frames)
    if strategy == "keyframes":
        engine = StreamingDepthEngine(model, config, device=device)
        return np.stack([depth for _, depth in engine.run(iter(frames))])
    if strategy == "per_frame":
        return np.stack(
            [
                predict_window(model, frames[i : i + 1], config, device)[0].numpy()
                for i in range(total)
            ]
        )
    length = config.window.length
    if strategy == "independent_windows":
        parts = [
            predict_window(model, _padded(frames, start, length), config, device)
            for start in range(0, total, length)
        ]
        return torch.cat(parts)[:total].numpy()
    if strategy == "aligned_windows":
        overlap = config.window.interp
        stride = length - overlap
        out = predict_window(model, _padded(frames, 0, length), config, device)
        start = stride
        while start + overlap < total:
            raw = predict_window(model, _padded(frames, start, length), config, device)
            shared = out[start : start + overlap]
            scale, shift = (1.0, 0.0) if model.config.metric else fit_affine(raw[:overlap], shared)
            aligned = (raw * scale + shift).clamp_min(0)
            out = torch.cat([out, aligned[overlap:]])
            start += stride
        return out[:total].numpy()
    raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
