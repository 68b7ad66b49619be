"""Inputs of the online-mode parity reference: official-layout weights and frames, made the
same way by the test and by `scripts/make_online_reference.py` (which ran the official code
on them once and committed its depths as `tests/data/online_reference.npz`).

Both come from NumPy's PCG64 bit stream (`random_raw`), which NumPy keeps stable across
versions (its distributions, and torch's generators, carry no such promise), so the weights
are the same wherever the test runs without storing 25 M parameters.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping

import numpy as np
import torch

SIZE = "vits"  # the smallest released network; random weights, official layout
INPUT_SIZE = 28  # 2 x 3 patches for the frames below: small enough for CPU, still a grid
FRAME_HEIGHT, FRAME_WIDTH = 30, 45  # resized to 28 x 42 and the depth back to 30 x 45
FRAMES = 100  # past the schedule's warm-up (42 frames) and well into its steady state
SEED = 2501_12375  # the paper's arXiv number


def uniform(seed: int, count: int) -> np.ndarray:
    """`count` floats in [-1, 1) from PCG64's raw 64-bit stream (53 bits each)."""
    raw = np.random.PCG64(seed).random_raw(count)
    return (raw >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def official_layout_weights(
    shapes: Mapping[str, torch.Size], seed: int = SEED
) -> dict[str, torch.Tensor]:
    """Random values for every parameter of an official-layout state dict.

    Scaled so that a 12-block ViT and the head stay in a sane range: matrices
    and kernels with variance 1 / fan-in, norm weights near 1, biases and layer
    scales small, and the head's last bias positive (a ReLU of mostly negative
    inputs would make a vacuous all-zero reference). The temporal modules'
    zero-initialised output projections get values too, so the cache matters.
    The sinusoidal `pos_encoder.pe` buffers are left out: both sides compute them.
    """
    weights = {}
    for key, shape in shapes.items():
        if key.endswith(".pe"):
            continue
        count = int(np.prod(shape)) if len(shape) else 1
        u = uniform(seed ^ zlib.crc32(key.encode()), count).reshape(tuple(shape))
        if len(shape) >= 2:
            fan_in = count // shape[0]
            value = u * np.sqrt(3.0 / fan_in)
        elif "norm" in key and key.endswith("weight"):
            value = 1.0 + 0.1 * u
        elif key == "head.scratch.output_conv2.2.bias":
            value = np.full(tuple(shape), 3.0)
        else:
            value = 0.05 * u
        weights[key] = torch.from_numpy(value.astype(np.float32))
    return weights


def reference_frames(
    count: int = FRAMES, height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH, seed: int = SEED
) -> np.ndarray:
    """(count, H, W, 3) RGB uint8: a drifting gradient under noise, so frames differ in
    content and motion the temporal attention can see."""
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    channel = np.arange(3)[None, None, :]
    noise = uniform(seed, count * height * width * 3).reshape(count, height, width, 3)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        base = 128 + 80 * np.sin(0.2 * cols + 0.15 * rows - 0.3 * t + 2.0 * channel)
        frames[t] = np.clip(base + 30 * noise[t], 0, 255).astype(np.uint8)
    return frames


def weights_sha256(weights: Mapping[str, torch.Tensor]) -> str:
    """One hash of the generated values (keys sorted): the test checks that it makes the
    weights the reference was made with before it compares depths."""
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(weights[key].numpy().tobytes())
    return digest.hexdigest()
