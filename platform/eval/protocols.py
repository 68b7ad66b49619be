"""The official benchmark protocols of Video Depth Anything, per data set, as data.

Every number here is read from the official release's `benchmark/` folder
(github.com/DepthAnything/Video-Depth-Anything, commit 4f5ae23); the `source`
of each preset names the lines. A preset says which frames the model sees
(`infer`: what `infer/infer.py` runs over, as `dataset_extract/*` writes the
frame lists), which of those are scored (`score`), the border crop applied to
ground truth and prediction, the depth cap, how many sequences, and whether the
model sees the cropped frame (`crop_input`: the extraction crops the RGB, as for
NYUv2 and ScanNet) or the whole frame with its prediction cropped afterwards (the
TAE script's `--hard_crop`).

Frame positions count from the first frame of the prepared sequence, so a data
set prepared from the raw sequences (not from the official extraction's frame
lists) gives the same frames: the selections here are those lists.

Protocols:
- `official-110`: `eval/eval.sh`, "~110 frames like DepthCrafter": Sintel (its
  sequences are at most 50 frames long, so whole), KITTI, Bonn, ScanNet.
- `official-500`: `eval/eval_500.sh`, "~500 frames": KITTI, Bonn, ScanNet, NYUv2.
- `official-tae`: `eval/eval_tae.sh`: TAE on ScanNet, 20 scenes, frames 10-179 of 192.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vda.model.metrics import crop_intrinsics

from ..data.benchmarks import BENCHMARKS, normalise_benchmark

PROTOCOLS: tuple[str, ...] = ("official-110", "official-500", "official-tae")


class ProtocolError(ValueError):
    """A protocol that does not apply to the data set it was asked for."""


@dataclass(frozen=True)
class Crop:
    """A border crop as Python slice bounds (`bottom` / `right` may be negative)."""

    top: int = 0
    bottom: int | None = None
    left: int = 0
    right: int | None = None

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Crop the last two axes (H, W)."""
        return array[..., self.top : self.bottom, self.left : self.right]

    def shape(self, height: int, width: int) -> tuple[int, int]:
        rows = range(height)[self.top : self.bottom]
        cols = range(width)[self.left : self.right]
        return len(rows), len(cols)

    def intrinsics(self, intrinsics: np.ndarray) -> np.ndarray:
        return np.stack([crop_intrinsics(k, self.top, self.left) for k in np.asarray(intrinsics)])

    @property
    def is_identity(self) -> bool:
        return self == Crop()


@dataclass(frozen=True)
class FrameSlice:
    start: int = 0
    stop: int | None = None
    step: int = 1

    def positions(self, count: int) -> list[int]:
        return list(range(count)[self.start : self.stop : self.step])


@dataclass(frozen=True)
class Preset:
    protocol: str
    benchmark: str
    infer: FrameSlice  # frames of the sequence the model runs over (one video)
    score: FrameSlice  # of those, the ones scored
    crop: Crop
    max_depth: float
    crop_input: bool  # True: the model sees the cropped frames; False: the prediction is cropped
    max_sequences: int | None = None  # the first N sequences in name order
    sequences: tuple[str, ...] = ()  # a named subset (NYUv2's eight scenes)
    tae: bool = False
    tae_variant: str = "official"
    tae_crop_intrinsics: bool = False  # the official TAE keeps the uncropped K (docs/eval.md)
    ground_truth_scale: str = ""  # how the official extraction stores depth (for `vda prepare`)
    source: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "benchmark": self.benchmark,
            "infer_frames": [self.infer.start, self.infer.stop, self.infer.step],
            "score_frames": [self.score.start, self.score.stop, self.score.step],
            "crop": [self.crop.top, self.crop.bottom, self.crop.left, self.crop.right],
            "max_depth": self.max_depth,
            "crop_input": self.crop_input,
            "max_sequences": self.max_sequences,
            "sequences": list(self.sequences),
            "tae": self.tae,
            "source": self.source,
        }


NYUV2_SCENES = (
    "basement_0001a",
    "bookstore_0001a",
    "cafe_0001a",
    "classroom_0001a",
    "kitchen_0003",
    "office_0004",
    "playroom_0002",
    "study_0002",
)
_WHOLE = FrameSlice()
_KITTI_CROP = Crop(0, 374, 0, 1242)  # eval.py: args.a..d; extraction: even height and width
_SCANNET_CROP = Crop(8, -8, 11, -11)  # eval_utils.copy_crop_files; eval.py / eval_tae.py a..d
_NYUV2_CROP = Crop(45, 471, 41, 601)

# fmt: off
PRESETS: dict[tuple[str, str], Preset] = {
    ("official-110", "sintel"): Preset(
        "official-110", "sintel", FrameSlice(0, 100), _WHOLE, Crop(0, 436, 0, 1024), 70.0, True,
        ground_truth_scale="clean pass; .dpt depth (the extraction stores it as uint16 / (65535/650))",
        source="dataset_extract_sintel.py gen_json(start_id=0, end_id=100); eval.py `sintel` "
        "branch (max_depth_eval 70, max_eval_len 100, a..d = 0, 436, 0, 1024)",
    ),
    ("official-110", "kitti"): Preset(
        "official-110", "kitti", FrameSlice(0, 110), _WHOLE, _KITTI_CROP, 80.0, True,
        ground_truth_scale="png16, depth_scale 1/256",
        source="dataset_extract_kitti.py gen_json(start_id=0, end_id=110); eval.py `kitti` "
        "branch (80 m, 110 frames, a..d = 0, 374, 0, 1242)",
    ),
    ("official-110", "bonn"): Preset(
        "official-110", "bonn", FrameSlice(30, 140), _WHOLE, Crop(0, 480, 0, 640), 10.0, True,
        ground_truth_scale="png16, depth_scale 1/5000",
        source="dataset_extract_bonn.py gen_json(start_id=30, end_id=140); eval.py `bonn` "
        "branch (10 m, 110 frames, a..d = 0, 480, 0, 640)",
    ),
    ("official-110", "scannet"): Preset(
        "official-110", "scannet", FrameSlice(0, 270, 3), _WHOLE, _SCANNET_CROP, 10.0, True,
        max_sequences=100, ground_truth_scale="png16, depth_scale 1/1000",
        source="dataset_extract_scannet.py: sorted scenes[:100], gen_json(start_id=0, "
        "end_id=90*3, step=3); eval.py `scannet` branch (10 m, 90 frames, a..d = 8, -8, 11, -11)",
    ),
    ("official-500", "kitti"): Preset(
        "official-500", "kitti", FrameSlice(0, 500), _WHOLE, _KITTI_CROP, 80.0, True,
        ground_truth_scale="png16, depth_scale 1/256",
        source="dataset_extract_kitti.py gen_json(start_id=0, end_id=500); eval.py `kitti_500`",
    ),
    ("official-500", "bonn"): Preset(
        "official-500", "bonn", FrameSlice(0, 500), _WHOLE, Crop(0, 480, 0, 640), 10.0, True,
        ground_truth_scale="png16, depth_scale 1/5000",
        source="dataset_extract_bonn.py gen_json(start_id=0, end_id=500); eval.py `bonn_500`",
    ),
    ("official-500", "scannet"): Preset(
        "official-500", "scannet", FrameSlice(0, 500), _WHOLE, _SCANNET_CROP, 10.0, True,
        max_sequences=100, ground_truth_scale="png16, depth_scale 1/1000",
        source="dataset_extract_scannet.py: sorted scenes[:100], gen_json(start_id=0, "
        "end_id=500); eval.py `scannet_500`",
    ),
    ("official-500", "nyuv2"): Preset(
        "official-500", "nyuv2", FrameSlice(0, 500), _WHOLE, _NYUV2_CROP, 10.0, True,
        sequences=NYUV2_SCENES, ground_truth_scale="png16, depth_scale 1/6000",
        source="dataset_extract_nyuv2.py (eight scenes extracted with MATLAB, listed there), "
        "gen_json(start_id=0, end_id=500); eval.py `nyuv2_500` (a..d = 45, 471, 41, 601)",
    ),
    ("official-tae", "scannet"): Preset(
        "official-tae", "scannet", FrameSlice(0, 192), FrameSlice(10, 180), _SCANNET_CROP, 10.0,
        False, max_sequences=20, tae=True, ground_truth_scale="png16, depth_scale 1/1000",
        source="eval_utils.gen_json_scannet_tae(start_id=0, end_id=192) over color_origin; "
        "eval_tae.sh (--start_idx 10 --end_idx 180 --eval_scenes_num 20 --hard_crop); "
        "eval_tae.py `scannet` branch (10 m, a..d = 8, -8, 11, -11)",
    ),
}
# fmt: on


def benchmark_of(manifest: dict[str, Any], override: str = "") -> str:
    """Which benchmark a prepared data set is: `vda prepare benchmark=...`, else its name."""
    for candidate in (override, manifest.get("benchmark") or "", manifest.get("dataset") or ""):
        key = normalise_benchmark(str(candidate))
        if key in BENCHMARKS:
            return key
    raise ProtocolError(
        f"data set {manifest.get('dataset')!r} is not one of the benchmarks {', '.join(BENCHMARKS)}: "
        "prepare it with `benchmark=<name>` (recorded in its manifest) or give eval `benchmark=`"
    )


def preset(protocol: str, benchmark: str) -> Preset:
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"protocol {protocol!r}: choose from {', '.join(PROTOCOLS)}")
    key = (protocol, normalise_benchmark(benchmark))
    if key not in PRESETS:
        having = sorted(b for p, b in PRESETS if p == protocol)
        raise ProtocolError(
            f"the official code has no {protocol} evaluation of {benchmark!r} "
            f"({protocol} covers {', '.join(having)})"
        )
    return PRESETS[key]


def select_sequences(preset: Preset, names: list[str]) -> tuple[list[str], list[str]]:
    """(the sequences the protocol scores, the ones it names that the data set lacks)."""
    ordered = sorted(names)
    if preset.sequences:
        missing = [s for s in preset.sequences if s not in ordered]
        chosen = [s for s in preset.sequences if s in ordered]
        if not chosen:
            raise ProtocolError(
                f"{preset.protocol} {preset.benchmark} scores the scenes {list(preset.sequences)}; "
                f"the data set has none of them (it has {ordered[:8]}); name the sequences to "
                "score with `sequences=[...]`"
            )
        return chosen, missing
    if preset.max_sequences is not None:
        ordered = ordered[: preset.max_sequences]
    return ordered, []
