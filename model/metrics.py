"""Evaluation: per-sequence affine alignment, AbsRel / delta1 / RMSE, and TAE.

Protocol (as the VDA paper evaluates video depth):
1. One least-squares scale and shift per *sequence*, fitted in disparity
   space over every valid pixel of every frame (ground truth depth in
   (1e-3, max_depth)); the prediction is clipped at >= 1e-3 first.
2. Aligned disparity clipped at >= 1e-3, depth = 1 / aligned clipped to
   [1e-3, max_depth].
3. AbsRel, delta1 (< 1.25) and RMSE per frame over valid pixels, averaged over
   frames (frames without valid pixels are skipped), then over sequences.
4. TAE (x100) on the aligned depths with known intrinsics and poses.

Metric-depth predictions can also be scored as they are (`alignment="none"`):
no fit, the prediction clipped to [1e-3, max_depth], so the error in metres
shows; the official release reports its metric models that way.

TAE comes in two variants. `official` is `benchmark/eval/eval_tae.py` of the
official release: pixels projected with frame i's fx, fy, cx, cy into frame
i+1 (no z > 0 test), where several points land on one pixel the last one in
raster order wins (what the CPU scatter does; on CUDA the winner is
undefined), a pair with no overlap counts as 0, and the sum is divided by
2(N - 1). `project` (this project's default) lets the nearest surface win (a
z-buffer, the physically right occlusion and the same on every device), drops
points behind the camera, uses each frame's own intrinsics and skips pairs
with no overlap instead of counting them as perfect.

The fit (`affine.AffineFit`) accumulates five float64 sums frame by frame and
solves at the end, so a 500-frame full-resolution sequence never builds one giant
design matrix; `evaluate_sequence` makes two passes over any indexable frame
container (a memory-mapped array, a list, a lazy reader).

Poses are camera-to-world 4x4 matrices, x right / y down / z forward (OpenCV):
the convention the clip shards store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .affine import AffineFit

MIN_DEPTH = 1e-3
DELTA1_THRESHOLD = 1.25
TaeVariant = Literal["project", "official"]
TAE_VARIANTS: tuple[str, ...] = ("project", "official")
Alignment = Literal["disparity_affine", "none"]

# Depth caps of the evaluation protocol, metres. Synthetic data sets carry
# their own cap in their manifest.
DEPTH_CAPS: dict[str, float] = {
    "kitti": 80.0,
    "sintel": 70.0,
    "nyuv2": 10.0,
    "bonn": 10.0,
    "scannet": 10.0,
}


def depth_cap(dataset: str, manifest_cap: float | None = None) -> float:
    """The evaluation depth cap of a data set: the manifest's if it has one, else the table's."""
    if manifest_cap is not None:
        return float(manifest_cap)
    key = dataset.lower()
    if key not in DEPTH_CAPS:
        raise KeyError(
            f"no depth cap known for data set {dataset!r}; known: {sorted(DEPTH_CAPS)}. "
            "Put max_depth in its manifest."
        )
    return DEPTH_CAPS[key]


def valid_ground_truth(
    gt_depth: np.ndarray, max_depth: float, mask: np.ndarray | None = None
) -> np.ndarray:
    valid = (gt_depth > MIN_DEPTH) & (gt_depth < max_depth)
    return valid if mask is None else valid & mask.astype(bool)


def aligned_depth(
    prediction: np.ndarray, scale: float, shift: float, max_depth: float
) -> np.ndarray:
    """Depth from a predicted disparity map after the sequence's alignment."""
    disparity = np.maximum(prediction.astype(np.float64), MIN_DEPTH) * scale + shift
    disparity = np.maximum(disparity, MIN_DEPTH)
    return np.clip(1.0 / disparity, MIN_DEPTH, max_depth)


def frame_errors(depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> dict | None:
    """AbsRel, delta1 and RMSE of one frame over its valid pixels; None if it has none."""
    if not valid.any():
        return None
    d = depth[valid].astype(np.float64)
    g = gt_depth[valid].astype(np.float64)
    ratio = np.maximum(d / g, g / d)
    return {
        "abs_rel": float(np.mean(np.abs(d - g) / g)),
        "delta1": float(np.mean(ratio < DELTA1_THRESHOLD)),
        "rmse": float(np.sqrt(np.mean((d - g) ** 2))),
    }


# -- camera geometry --------------------------------------------------------
def resize_intrinsics(
    intrinsics: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]
) -> np.ndarray:
    """Intrinsics after resizing the image from src (H, W) to dst (H, W).

    Pixel-centre convention (pixel i covers [i - 0.5, i + 0.5], as OpenCV
    resizes): u' = (u + 0.5) * sx - 0.5.
    """
    sy = dst_hw[0] / src_hw[0]
    sx = dst_hw[1] / src_hw[1]
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    k[0, 0] *= sx
    k[0, 1] *= sx
    k[1, 1] *= sy
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return k


def crop_intrinsics(intrinsics: np.ndarray, top: int, left: int) -> np.ndarray:
    """Intrinsics after cropping the image at (top, left)."""
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    k[0, 2] -= left
    k[1, 2] -= top
    return k


def reproject_depth(
    depth: np.ndarray,
    intrinsics_src: np.ndarray,
    c2w_src: np.ndarray,
    intrinsics_dst: np.ndarray,
    c2w_dst: np.ndarray,
) -> np.ndarray:
    """Splat frame src's depth into frame dst's camera; 0 where nothing lands.

    Every pixel with depth > 0 is back-projected, moved with
    inv(c2w_dst) @ c2w_src, projected to the nearest dst pixel; where several
    land on one pixel the nearest surface wins (z-buffer).
    """
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width]
    z = depth.astype(np.float64).ravel()
    keep = z > 0
    pixels = np.stack([u.ravel()[keep], v.ravel()[keep], np.ones(keep.sum())])
    rays = np.linalg.inv(intrinsics_src) @ pixels
    points = rays * z[keep]
    relative = np.linalg.inv(c2w_dst) @ c2w_src
    moved = relative[:3, :3] @ points + relative[:3, 3:4]
    in_front = moved[2] > MIN_DEPTH
    moved = moved[:, in_front]
    projected = intrinsics_dst @ moved
    u_dst = np.rint(projected[0] / projected[2]).astype(np.int64)
    v_dst = np.rint(projected[1] / projected[2]).astype(np.int64)
    inside = (u_dst >= 0) & (u_dst < width) & (v_dst >= 0) & (v_dst < height)
    flat = v_dst[inside] * width + u_dst[inside]
    buffer = np.full(height * width, np.inf)
    np.minimum.at(buffer, flat, moved[2, inside])
    buffer[np.isinf(buffer)] = 0.0
    return buffer.reshape(height, width)


def _pair_abs_rel(warped: np.ndarray, reference: np.ndarray) -> float | None:
    both = (warped > 0) & (reference > 0)
    if not both.any():
        return None
    return float(np.mean(np.abs(warped[both] - reference[both]) / reference[both]))


def reproject_depth_official(
    depth: np.ndarray, intrinsics: np.ndarray, relative: np.ndarray
) -> np.ndarray:
    """Frame src's depth in frame dst's pixels as the official `tae_torch` builds it.

    `relative` is inv(c2w_dst) @ c2w_src. No test of z > 0 (a point behind the
    camera may land and is dropped only by the later `> 0` test), nearest pixel by
    rounding, and the last point in raster order wins a pixel.
    """
    height, width = depth.shape
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    v, u = np.mgrid[0:height, 0:width]
    z = depth.astype(np.float64)
    points = np.stack([((u - cx) * z / fx).ravel(), ((v - cy) * z / fy).ravel(), z.ravel()])
    moved = relative[:3, :3] @ points + relative[:3, 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        u_dst = np.round(moved[0] * fx / moved[2] + cx)
        v_dst = np.round(moved[1] * fy / moved[2] + cy)
    inside = np.isfinite(u_dst) & np.isfinite(v_dst)
    inside &= (u_dst >= 0) & (u_dst < width) & (v_dst >= 0) & (v_dst < height)
    flat = (v_dst[inside] * width + u_dst[inside]).astype(np.int64)
    values = moved[2, inside]
    # the last write of each pixel: the first occurrence in the reversed order
    _, first_reversed = np.unique(flat[::-1], return_index=True)
    last = len(flat) - 1 - first_reversed
    out = np.zeros(height * width)
    out[flat[last]] = values[last]
    return out.reshape(height, width)


def _official_pair(
    source: np.ndarray, target: np.ndarray, intrinsics: np.ndarray, relative: np.ndarray
) -> float:
    projected = reproject_depth_official(source, intrinsics, relative)
    both = (projected > 0) & (target > 0)
    if not both.any():
        return 0.0  # as the official code: counted, as a perfect pair
    return float(np.mean(np.abs(target[both] - projected[both]) / target[both]))


def temporal_alignment_error(
    depths: Sequence[np.ndarray],
    intrinsics: Sequence[np.ndarray] | np.ndarray,
    c2w: Sequence[np.ndarray],
    variant: TaeVariant = "project",
) -> float:
    """TAE x100: mean AbsRel of each frame's depth reprojected into its neighbour, both ways.

    `intrinsics` is one 3x3 matrix for all frames or one per frame; `c2w` holds
    camera-to-world poses. See the module docstring for the two variants.
    """
    if variant not in TAE_VARIANTS:
        raise ValueError(f"TAE variant {variant!r}: choose from {', '.join(TAE_VARIANTS)}")
    count = len(depths)
    if count < 2:
        return 0.0
    per_frame = np.asarray(intrinsics, dtype=np.float64)
    ks = [per_frame] * count if per_frame.ndim == 2 else list(per_frame)
    if variant == "official":
        total = 0.0
        for i in range(count - 1):
            a = np.asarray(depths[i], dtype=np.float64)
            b = np.asarray(depths[i + 1], dtype=np.float64)
            forward = np.linalg.inv(c2w[i + 1]) @ c2w[i]
            total += _official_pair(a, b, ks[i], forward)
            total += _official_pair(b, a, ks[i], np.linalg.inv(forward))
        return 100.0 * total / (2 * (count - 1))
    terms = []
    for i in range(count - 1):
        a, b = np.asarray(depths[i]), np.asarray(depths[i + 1])
        forward = _pair_abs_rel(reproject_depth(a, ks[i], c2w[i], ks[i + 1], c2w[i + 1]), b)
        backward = _pair_abs_rel(reproject_depth(b, ks[i + 1], c2w[i + 1], ks[i], c2w[i]), a)
        terms.extend(t for t in (forward, backward) if t is not None)
    return 100.0 * float(np.mean(terms)) if terms else float("nan")


@dataclass
class SequenceResult:
    abs_rel: float
    delta1: float
    rmse: float
    frames: int  # frames with valid ground truth
    scale: float
    shift: float
    tae: float | None = None
    per_frame: list[dict] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        out = {
            k: getattr(self, k) for k in ("abs_rel", "delta1", "rmse", "frames", "scale", "shift")
        }
        if self.tae is not None:
            out["tae"] = self.tae
        return out


def evaluate_sequence(
    predictions: Sequence[np.ndarray],
    gt_depths: Sequence[np.ndarray],
    max_depth: float,
    masks: Sequence[np.ndarray] | None = None,
    intrinsics: Sequence[np.ndarray] | np.ndarray | None = None,
    c2w: Sequence[np.ndarray] | None = None,
    alignment: Alignment = "disparity_affine",
    tae_variant: TaeVariant = "project",
) -> SequenceResult:
    """Metrics of one sequence of predictions against ground-truth depths.

    `disparity_affine`: predictions are relative disparity, aligned with one scale
    and shift per sequence. `none`: predictions are depth in metres, scored as they
    are (clipped to [1e-3, max_depth]). Two passes over the frames (fit, then
    score): memory is one frame at a time, plus the depths when TAE is requested.
    """
    if alignment not in ("disparity_affine", "none"):
        raise ValueError(f"alignment {alignment!r}: use 'disparity_affine' or 'none'")
    if len(predictions) != len(gt_depths):
        raise ValueError(f"{len(predictions)} predictions for {len(gt_depths)} ground-truth frames")

    def valid_of(i: int) -> np.ndarray:
        return valid_ground_truth(
            np.asarray(gt_depths[i]), max_depth, None if masks is None else np.asarray(masks[i])
        )

    scale, shift = 1.0, 0.0
    if alignment == "disparity_affine":
        fit = AffineFit()
        for i in range(len(predictions)):
            gt = np.asarray(gt_depths[i], dtype=np.float64)
            valid = valid_of(i)
            with np.errstate(divide="ignore"):
                gt_disparity = np.where(valid, 1.0 / np.where(valid, gt, 1.0), 0.0)
            prediction = np.maximum(np.asarray(predictions[i], dtype=np.float64), MIN_DEPTH)
            fit.add(prediction, gt_disparity, valid)
        scale, shift = fit.solve()

    per_frame: list[dict] = []
    aligned: list[np.ndarray] = []
    want_tae = intrinsics is not None and c2w is not None
    for i in range(len(predictions)):
        if alignment == "none":
            depth = np.clip(np.asarray(predictions[i], dtype=np.float64), MIN_DEPTH, max_depth)
        else:
            depth = aligned_depth(np.asarray(predictions[i]), scale, shift, max_depth)
        errors = frame_errors(depth, np.asarray(gt_depths[i]), valid_of(i))
        if errors is not None:
            per_frame.append({"frame": i, **errors})
        if want_tae:
            aligned.append(depth)
    if not per_frame:
        raise ValueError("sequence has no frame with valid ground truth")
    result = SequenceResult(
        abs_rel=float(np.mean([f["abs_rel"] for f in per_frame])),
        delta1=float(np.mean([f["delta1"] for f in per_frame])),
        rmse=float(np.mean([f["rmse"] for f in per_frame])),
        frames=len(per_frame),
        scale=scale,
        shift=shift,
        per_frame=per_frame,
    )
    if want_tae:
        result.tae = temporal_alignment_error(aligned, intrinsics, c2w, tae_variant)
    return result


def mean_over_sequences(results: Sequence[SequenceResult]) -> dict[str, float]:
    """The data-set numbers: each metric averaged over sequences (not over frames)."""
    if not results:
        raise ValueError("no sequences to average")
    out = {
        k: float(np.mean([getattr(r, k) for r in results])) for k in ("abs_rel", "delta1", "rmse")
    }
    taes = [r.tae for r in results if r.tae is not None and np.isfinite(r.tae)]
    if taes:
        out["tae"] = float(np.mean(taes))
    out["sequences"] = len(results)
    return out
