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


def ground_truth(dataset: str, entry: dict[str, Any], settings: S3Settings | None = None):
    """(depth, valid, intrinsics, c2w) of one sequence, read from its shards."""
    chunks = []
    for shard in entry["shards"]:
        table = pq.read_table(io.BytesIO(read_bytes(join(dataset, shard), settings)))
        chunks.extend(decode_chunk(row) for row in table.to_pylist())
    chunks.sort(key=lambda c: c.frame_index[0])
    depth = np.concatenate([c.depth for c in chunks])
    valid = np.concatenate([c.valid for c in chunks])
    intrinsics = (
        np.concatenate([c.intrinsics for c in chunks]) if chunks[0].intrinsics is not None else None
    )
    c2w = np.concatenate([c.c2w for c in chunks]) if chunks[0].c2w is not None else None
    return depth, valid, intrinsics, c2w


def predicted_depth(
    outputs: str, sequence: str, settings: S3Settings | None = None
) -> np.ndarray | None:
    files = list_files(join(outputs, sequence), (".npz",), settings)
    if not files:
        return None
    arrays = [np.load(io.BytesIO(read_bytes(f, settings))) for f in sorted(files)]
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
