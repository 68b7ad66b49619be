"""Ground truth from the clip shards, and `vda infer` outputs matched to it frame by frame.

Each sequence of the data set is matched with `<outputs>/<sequence>/` (its
depth `.npz` files). Frames are matched by number (the `.npz` `frame_index`:
the source frame a depth belongs to, also under `target_fps` / `max_len`), never
by position; a frame to score with no output, or an output of a frame the
ground truth does not have, is an error naming the frames. A prediction of
another size is cropped, resized or refused (`fit_size`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq

from ..data.shards import decode_chunk
from ..storage import S3Settings, exists, join, list_files, read_bytes
from .protocols import Crop


@dataclass
class EvalReport:
    dataset: str
    max_depth: float
    sequences: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    overall: dict[str, float] = field(default_factory=dict)


@dataclass
class SequenceData:
    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W)
    valid: np.ndarray  # (T, H, W) bool
    intrinsics: np.ndarray | None  # (T, 3, 3)
    c2w: np.ndarray | None  # (T, 4, 4)


def read_sequence(
    dataset: str, entry: dict[str, Any], settings: S3Settings | None = None
) -> SequenceData:
    """One whole sequence of a prepared data set, from its shards, in frame order."""
    chunks = []
    for shard in entry["shards"]:
        table = pq.read_table(io.BytesIO(read_bytes(join(dataset, shard), settings)))
        chunks.extend(decode_chunk(row) for row in table.to_pylist())
    chunks.sort(key=lambda c: c.frame_index[0])

    def joined(name: str) -> np.ndarray | None:
        parts = [getattr(c, name) for c in chunks]
        return None if parts[0] is None else np.concatenate(parts)

    return SequenceData(
        rgb=joined("rgb"),
        depth=joined("depth"),
        valid=joined("valid"),
        intrinsics=joined("intrinsics"),
        c2w=joined("c2w"),
    )


class FrameMatchError(ValueError):
    """Outputs whose frames do not match the ground truth's (count, numbers or size)."""


@dataclass
class PredictedFrames:
    """One sequence's `vda infer` outputs: depth by frame number, and what kind of depth."""

    numbers: np.ndarray  # (N,) int64 frame numbers (`frame_index` of the .npz files)
    depth: np.ndarray  # (N, H, W) float32
    metric: bool | None  # from metadata.json's depth_kind; None when there is no metadata
    expected: int | None = None  # frames metadata.json says were written

    def check_complete(self, sequence: str) -> None:
        if self.expected is not None and self.expected != len(self.numbers):
            raise FrameMatchError(
                f"{sequence}: the outputs are incomplete: metadata.json says {self.expected} "
                f"frames were written, the depth files hold {len(self.numbers)}"
            )

    def frames(self, wanted: list[int], known: set[int], sequence: str) -> np.ndarray:
        """The depth of frames `wanted`, in that order; a missing or stray frame is an error.

        `known` is every frame number the ground truth has: an output frame outside it
        means the outputs are of another video (or numbered differently), which a
        silent truncation would score against the wrong frames.
        """
        position = {int(n): i for i, n in enumerate(self.numbers)}
        if len(position) != len(self.numbers):
            raise FrameMatchError(f"{sequence}: the outputs repeat frame numbers")
        stray = sorted(set(position) - known)
        if stray:
            raise FrameMatchError(
                f"{sequence}: the outputs hold {len(stray)} frame(s) the ground truth does not "
                f"have (frame numbers {_numbers(stray)}; ground truth {_numbers(sorted(known))})"
            )
        missing = [n for n in wanted if n not in position]
        if missing:
            raise FrameMatchError(
                f"{sequence}: the outputs have no depth for {len(missing)} of the {len(wanted)} "
                f"frames to score (frame numbers {_numbers(missing)}; the outputs hold "
                f"{_numbers(sorted(position))}): rerun `vda infer` over those frames "
                "(target_fps / max_len skip frames)"
            )
        return self.depth[[position[n] for n in wanted]]


def _numbers(values: list[int]) -> str:
    if len(values) > 6:
        return f"{values[0]}, {values[1]}, {values[2]} ... {values[-1]} ({len(values)} in all)"
    return ", ".join(map(str, values))


def frame_numbers(entry: dict[str, Any]) -> list[int]:
    """The number of each ground-truth frame, in order: positions 0, 1, ... unless the
    manifest recorded the source numbers (image-folder layouts)."""
    recorded = entry.get("frame_numbers")
    return [int(n) for n in recorded] if recorded else list(range(int(entry["frames"])))


def _load_depth_npz(uri: str, settings: S3Settings | None) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(read_bytes(uri, settings)), allow_pickle=False) as archive:
            return {"depth": archive["depth"], "frame_index": archive["frame_index"]}
    except (ValueError, KeyError, OSError, EOFError) as error:
        raise ValueError(
            f"{uri} is not a depth .npz as `vda infer` writes it (depth + frame_index): {error}"
        ) from None


def load_outputs(
    outputs: str, sequence: str, settings: S3Settings | None = None
) -> PredictedFrames | None:
    """A sequence's outputs under `<outputs>/<sequence>/`, or None when it has none."""
    folder = join(outputs, sequence)
    files = list_files(folder, (".npz",), settings)
    if not files:
        return None
    arrays = [_load_depth_npz(f, settings) for f in sorted(files)]
    numbers = np.concatenate([a["frame_index"] for a in arrays]).astype(np.int64)
    depth = np.concatenate([a["depth"] for a in arrays]).astype(np.float32)
    metric = expected = None
    meta_uri = join(folder, "metadata.json")
    if exists(meta_uri, settings):
        meta = json.loads(read_bytes(meta_uri, settings))
        metric = str(meta.get("depth_kind", "")).startswith("metric")
        expected = meta.get("frames")
    order = np.argsort(numbers, kind="stable")
    return PredictedFrames(numbers[order], depth[order], metric, expected)


def fit_size(
    prediction: np.ndarray,
    full_hw: tuple[int, int],
    crop: Crop,
    policy: str,
    sequence: str,
) -> tuple[np.ndarray, str | None]:
    """Prediction (T, h, w) brought to the scored (cropped) size; (array, what was done).

    A prediction at the ground truth's full size is cropped as the ground truth is;
    one at the cropped size is used as it is. Any other size is resized (bilinear,
    as the official `get_infer` does) when `policy` is "resize" and the aspect ratio
    matches, and refused otherwise: a different aspect ratio is a different framing.
    """
    size = tuple(prediction.shape[-2:])
    cropped_hw = crop.shape(*full_hw)
    if size == tuple(full_hw):
        return crop.apply(prediction), (None if crop.is_identity else "cropped")
    if size == cropped_hw:
        return prediction, None
    wanted = f"{full_hw[0]}x{full_hw[1]} (or {cropped_hw[0]}x{cropped_hw[1]} cropped)"
    if policy != "resize":
        raise FrameMatchError(
            f"{sequence}: prediction is {size[0]}x{size[1]}, the ground truth {wanted}; "
            "size_mismatch=refuse (set size_mismatch=resize to resize it)"
        )
    for target, then_crop in ((tuple(full_hw), True), (cropped_hw, False)):
        if abs(size[1] / size[0] - target[1] / target[0]) <= 0.01 * target[1] / target[0]:
            resized = np.stack(
                [
                    cv2.resize(f, (target[1], target[0]), interpolation=cv2.INTER_LINEAR)
                    for f in prediction.astype(np.float32)
                ]
            )
            note = f"resized from {size[0]}x{size[1]}"
            return (crop.apply(resized), note) if then_crop else (resized, note)
    raise FrameMatchError(
        f"{sequence}: prediction is {size[0]}x{size[1]}, the ground truth {wanted}: the aspect "
        "ratio differs, so resizing would stretch it; infer at the ground truth's framing"
    )
