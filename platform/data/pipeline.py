"""Ray Data pipeline: clip shards -> augmented training clips -> torch batches.

`read_parquet` streams the shard files (file-level shuffle); a `flat_map` on
CPU samples `windows_per_chunk` clip windows from each chunk row, decodes only
those frames, and augments each clip once (the same crop/zoom/flip/jitter for
all its frames). Training workers take batches with `iter_torch_batches` and
`to_model_inputs` normalises them on their device.

Randomness is seeded per clip: from (seed, epoch, clip key) when `epoch` is
given (reproducible), or from fresh entropy on every execution otherwise.
A dataset handed to Ray Train is re-executed every epoch, so the second mode
gives new crops every epoch; seeding once per data set would repeat the same
crop forever, which is no augmentation at all.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..storage import S3Settings, join, read_bytes, resolve
from .augment import AugmentConfig, Clip, augment_clip
from .shards import decode_chunk


@dataclass
class ClipConfig:
    clip_len: int = 8
    batch_size: int = 2
    windows_per_chunk: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    # clips mixed across chunks and files before batching (0: off). Files are shuffled
    # when read, but a chunk's clips would otherwise sit side by side in one batch
    shuffle_buffer_clips: int = 8
    decode_cpus: float = 0.5  # fractional: a pool that takes every CPU starves the read tasks
    read_cpus: float = 0.5  # per parquet read task; below 1 so reads fit beside fractional workers


def read_manifest(dataset: str, settings: S3Settings | None = None) -> dict[str, Any]:
    return json.loads(read_bytes(join(dataset, "manifest.json"), settings))


def shard_uris(dataset: str, manifest: dict[str, Any]) -> list[str]:
    return [join(dataset, shard) for entry in manifest["sequences"] for shard in entry["shards"]]


def _clip_key(row: dict[str, Any]) -> int:
    return zlib.crc32(f"{row['dataset']}/{row['sequence']}/{row['chunk']}".encode())


def sample_clips(
    row: dict[str, Any],
    config: ClipConfig,
    train: bool = True,
    epoch: int | None = None,
    disparity: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Clips of `clip_len` frames from one chunk row, decoded and augmented."""
    length = len(row["frame_index"])
    if length < config.clip_len:
        return []
    token = epoch if epoch is not None else int.from_bytes(os.urandom(8), "little")
    rng = np.random.default_rng([config.seed, token, _clip_key(row)])
    if train:
        starts = rng.integers(0, length - config.clip_len + 1, size=config.windows_per_chunk)
    else:  # evaluation: fixed, non-overlapping windows
        starts = np.arange(0, length - config.clip_len + 1, config.clip_len)
    clips = []
    for start in starts:
        chunk = decode_chunk(row, slice(int(start), int(start) + config.clip_len))
        clip = augment_clip(
            Clip(chunk.rgb, chunk.depth, chunk.valid, chunk.intrinsics, chunk.c2w),
            config.augment,
            rng,
            train,
        )
        clips.append(_to_row(clip, chunk.frame_index, disparity))
    return clips


def _to_row(clip: Clip, frame_index: np.ndarray, disparity: bool) -> dict[str, np.ndarray]:
    frames = clip.depth.shape[0]
    mask = clip.valid & (clip.depth > 0)
    if disparity:
        target = np.where(mask, 1.0 / np.where(mask, clip.depth, 1.0), 0.0).astype(np.float32)
    else:
        target = clip.depth.astype(np.float32)
    return {
        "frames": clip.rgb,
        "target": target,
        "depth": clip.depth.astype(np.float32),
        "mask": mask,
        "frame_index": frame_index.astype(np.int64),
        "has_pose": np.asarray(clip.c2w is not None and clip.intrinsics is not None),
        "intrinsics": (
            clip.intrinsics if clip.intrinsics is not None else np.zeros((frames, 3, 3))
        ).astype(np.float32),
        "c2w": (clip.c2w if clip.c2w is not None else np.zeros((frames, 4, 4))).astype(np.float32),
    }


def build_clip_dataset(
    dataset: str,
    config: ClipConfig,
    train: bool = True,
    epoch: int | None = None,
    settings: S3Settings | None = None,
    shuffle: bool = True,
):
    """A Ray Dataset of augmented clips from the shards of a prepared data set."""
    import ray.data

    manifest = read_manifest(dataset, settings)
    uris = shard_uris(dataset, manifest)
    if not uris:
        raise ValueError(f"data set {dataset} has no shards (manifest lists no sequences)")
    shortest = min(
        min(entry["frames"], manifest["chunk_frames"]) for entry in manifest["sequences"]
    )
    if shortest < config.clip_len:
        print(
            f"note: chunks shorter than clip_len={config.clip_len} (as short as {shortest}) are skipped"
        )
    filesystem, _ = resolve(uris[0], settings)
    paths = [resolve(uri, settings)[1] for uri in uris]
    disparity = manifest.get("depth_kind", "depth") == "depth"
    ds = ray.data.read_parquet(
        paths,
        filesystem=filesystem,
        shuffle="files" if (shuffle and train) else None,
        num_cpus=config.read_cpus,  # named: ray_remote_args goes away in Ray 2.64
    )
    return ds.flat_map(
        sample_clips,
        fn_kwargs={"config": config, "train": train, "epoch": epoch, "disparity": disparity},
        num_cpus=config.decode_cpus,
    )


def to_model_inputs(batch: dict, device="cpu") -> dict:
    """Collated clip batch -> normalised (B, T, 3, H, W) frames and float targets on `device`.

    Runs on training workers; torch is imported here, not at module level, so
    the Ray Data decode workers that import this module stay light.
    """
    import torch

    from vda.model.transforms import IMAGENET_MEAN, IMAGENET_STD

    frames = batch["frames"].to(device, non_blocking=True).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 1, 1, 1, 3)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 1, 1, 1, 3)
    frames = ((frames - mean) / std).permute(0, 1, 4, 2, 3).contiguous()
    out = {"frames": frames}
    for key in ("target", "depth", "mask", "frame_index", "has_pose", "intrinsics", "c2w"):
        out[key] = batch[key].to(device, non_blocking=True)
    return out
