"""Evaluate a finished `vda infer` output prefix against a prepared data set.

Each sequence of the data set is matched with `<outputs>/<sequence>/`
(its depth `.npz` files); the ground truth comes from the clip shards, with
intrinsics and poses for TAE where the data set has them; the depth cap
comes from the manifest (or the per-data-set table).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from vda.model.metrics import SequenceResult, depth_cap, evaluate_sequence, mean_over_sequences

from ..data.pipeline import read_manifest
from ..data.shards import decode_chunk
from ..storage import S3Settings, join, list_files, read_bytes


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


def ground_truth(dataset: str, entry: dict[str, Any], settings: S3Settings | None = None):
    """(depth, valid, intrinsics, c2w) of one sequence, read from its shards."""
    data = read_sequence(dataset, entry, settings)
    return data.depth, data.valid, data.intrinsics, data.c2w


def _load_depth_npz(uri: str, settings: S3Settings | None) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(read_bytes(uri, settings)), allow_pickle=False) as archive:
            return {"depth": archive["depth"], "frame_index": archive["frame_index"]}
    except (ValueError, KeyError, OSError, EOFError) as error:
        raise ValueError(
            f"{uri} is not a depth .npz as `vda infer` writes it (depth + frame_index): {error}"
        ) from None


def predicted_depth(
    outputs: str, sequence: str, settings: S3Settings | None = None
) -> np.ndarray | None:
    files = list_files(join(outputs, sequence), (".npz",), settings)
    if not files:
        return None
    arrays = [_load_depth_npz(f, settings) for f in sorted(files)]
    order = np.concatenate([a["frame_index"] for a in arrays])
    depth = np.concatenate([a["depth"] for a in arrays]).astype(np.float32)
    return depth[np.argsort(order)]


def evaluate_outputs(
    outputs: str, dataset: str, settings: S3Settings | None = None, metric: bool = False
) -> EvalReport:
    """Per-sequence and overall AbsRel / delta1 / RMSE / TAE of `vda infer` outputs.

    Relative (disparity) outputs get the per-sequence affine alignment;
    `metric=True` outputs (depth in metres) are converted to disparity, so
    the same protocol applies.
    """
    manifest = read_manifest(dataset, settings)
    cap = depth_cap(manifest.get("dataset", ""), manifest.get("max_depth"))
    report = EvalReport(dataset=manifest.get("dataset", dataset), max_depth=cap)
    results: list[SequenceResult] = []
    for entry in manifest["sequences"]:
        prediction = predicted_depth(outputs, entry["sequence"], settings)
        if prediction is None:
            report.missing.append(entry["sequence"])
            continue
        depth, valid, intrinsics, c2w = ground_truth(dataset, entry, settings)
        count = min(len(prediction), len(depth))
        if metric:
            prediction = 1.0 / np.maximum(prediction, 1e-3)
        result = evaluate_sequence(
            prediction[:count],
            depth[:count],
            cap,
            masks=valid[:count],
            intrinsics=None if intrinsics is None else intrinsics[:count],
            c2w=None if c2w is None else list(c2w[:count]),
        )
        results.append(result)
        report.sequences[entry["sequence"]] = result.as_dict()
    if results:
        report.overall = mean_over_sequences(results)
    return report
