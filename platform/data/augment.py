"""Per-clip augmentation: one random crop / scale / flip / colour jitter for all frames of a clip.

Depth and validity are resized with nearest neighbour (bilinear filtering
would blend foreground with background across depth edges, inventing depths
that exist nowhere), in OpenCV's pixel-centre-exact variant: plain
INTER_NEAREST samples half a pixel off the convention the intrinsics follow; intrinsics follow every resize and crop, and a
horizontal flip mirrors intrinsics and camera-to-world poses, so TAE stays
computable on augmented clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vda.model.metrics import crop_intrinsics, resize_intrinsics

MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])


@dataclass
class AugmentConfig:
    height: int = 112  # output size: multiples of 14 for the network
    width: int = 112
    min_scale: float = 1.0  # extra zoom over the smallest resize that covers the output
    max_scale: float = 1.25
    flip: bool = True
    color_jitter: float = 0.1  # brightness/contrast/saturation amplitude


@dataclass
class Clip:
    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32
    valid: np.ndarray  # (T, H, W) bool
    intrinsics: np.ndarray | None  # (T, 3, 3)
    c2w: np.ndarray | None  # (T, 4, 4)


def augment_clip(clip: Clip, config: AugmentConfig, rng: np.random.Generator, train: bool) -> Clip:
    """Resize (and in training randomly zoom, crop, flip, jitter) a clip to the output size."""
    _, height, width = clip.depth.shape
    cover = max(config.height / height, config.width / width)
    zoom = rng.uniform(config.min_scale, config.max_scale) if train else 1.0
    new_h = max(config.height, int(np.ceil(height * cover * zoom)))
    new_w = max(config.width, int(np.ceil(width * cover * zoom)))
    if train:
        top = int(rng.integers(0, new_h - config.height + 1))
        left = int(rng.integers(0, new_w - config.width + 1))
    else:
        top, left = (new_h - config.height) // 2, (new_w - config.width) // 2
    flip = bool(train and config.flip and rng.random() < 0.5)
    window = (slice(top, top + config.height), slice(left, left + config.width))

    rgb = np.stack(
        [cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_AREA)[window] for f in clip.rgb]
    )
    depth = np.stack(
        [
            cv2.resize(d, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)[window]
            for d in clip.depth
        ]
    )
    valid = np.stack(
        [
            cv2.resize(v.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)[
                window
            ]
            for v in clip.valid
        ]
    ).astype(bool)
    intrinsics = None
    if clip.intrinsics is not None:
        intrinsics = np.stack(
            [
                crop_intrinsics(resize_intrinsics(k, (height, width), (new_h, new_w)), top, left)
                for k in clip.intrinsics
            ]
        )
    c2w = clip.c2w
    if flip:
        rgb, depth, valid = rgb[:, :, ::-1], depth[:, :, ::-1], valid[:, :, ::-1]
        if intrinsics is not None:
            intrinsics = intrinsics.copy()
            intrinsics[:, 0, 2] = config.width - 1 - intrinsics[:, 0, 2]
        if c2w is not None:
            c2w = MIRROR @ c2w @ MIRROR
    if train and config.color_jitter > 0:
        rgb = _jitter(rgb, config.color_jitter, rng)
    return Clip(
        np.ascontiguousarray(rgb),
        np.ascontiguousarray(depth),
        np.ascontiguousarray(valid),
        intrinsics,
        None if c2w is None else np.asarray(c2w),
    )


def _jitter(rgb: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    brightness, contrast, saturation = 1 + rng.uniform(-amount, amount, size=3)
    image = rgb.astype(np.float32) * brightness
    mean = image.mean(axis=(1, 2, 3), keepdims=True)
    image = (image - mean) * contrast + mean
    gray = image.mean(axis=3, keepdims=True)
    image = (image - gray) * saturation + gray
    return np.clip(image, 0, 255).astype(np.uint8)
