"""`vda prepare`: raw layouts -> clip shards + manifest, in parallel over sequences with Ray.

Each sequence is one Ray task that streams its frames into Parquet row
groups (one chunk at a time: memory is one chunk, not one sequence), rolls
over to a new shard file at `shard_mb`, and writes `_done/<sequence>.json`
last. A rerun skips sequences that have that marker; an interrupted one is
redone from the start under the same shard names. A sequence that fails
(missing depth, size mismatch, unreadable file) is recorded with its reason
in the manifest, and the others still convert.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow.parquet as pq

from ..core.progress import JobProgress
from ..core.session import start_ray
from ..storage import S3Settings, exists, join, open_output, read_bytes, write_bytes
from .benchmarks import BENCHMARKS, normalise_benchmark
from .layouts import (
    LayoutError,
    Sequence,
    npy_sequences,
    png16_sequences,
    sintel_sequences,
    synthetic_sequences,
)
from .shards import FORMAT_VERSION, SCHEMA, FrameRecord, encode_chunk, rows_to_table
from .synthetic import SyntheticConfig, SyntheticScene

Layout = Literal["png16", "npy", "sintel", "synthetic"]


@dataclass
class SyntheticOptions:
    sequences: int = 8
    frames: int = 48
    height: int = 96
    width: int = 128
    seed: int = 0
    open_far_side: bool = False


@dataclass
class PrepareConfig:
    layout: Layout = "synthetic"
    src: str = ""
    dst: str = "data/synthetic"
    dataset: str = ""  # default: the layout name for synthetic data, else the source folder name
    # which official benchmark this is (sintel, kitti, bonn, scannet, nyuv2), recorded in the
    # manifest so `vda eval protocol=official-...` knows its preset; default: from `dataset`
    benchmark: str = ""
    split: str = "train"
    depth_scale: float = 1.0  # png16 layout: metres per unit (KITTI 1/256, ScanNet 1/1000, ...)
    invalid_value: int | None = None  # png16 layout: e.g. 65535 for VKITTI sky
    sintel_pass: str = "final"
    frame_format: Literal["png", "jpeg"] = "png"
    depth_encoding: Literal["f16", "png16"] = "f16"
    png16_scale: float = 0.001  # metres per unit when depth_encoding is png16
    chunk_frames: int = 64
    shard_mb: float = 128.0
    max_depth: float | None = None  # evaluation cap recorded in the manifest
    metric: bool = True
    synthetic: SyntheticOptions = field(default_factory=SyntheticOptions)
    s3: S3Settings = field(default_factory=S3Settings)
    cpus_per_sequence: float = 1.0

    def __post_init__(self) -> None:
        if self.layout != "synthetic" and not self.src:
            raise ValueError(f"layout {self.layout!r} needs src")
        if self.chunk_frames < 1:
            raise ValueError("chunk_frames must be at least 1")
        if self.benchmark and normalise_benchmark(self.benchmark) not in BENCHMARKS:
            raise ValueError(f"benchmark {self.benchmark!r}: choose from {', '.join(BENCHMARKS)}")

    @property
    def benchmark_name(self) -> str:
        """The benchmark key, or "" when the data set is none of the official five."""
        for candidate in (self.benchmark, self.dataset_name):
            if normalise_benchmark(candidate) in BENCHMARKS:
                return normalise_benchmark(candidate)
        return ""

    @property
    def dataset_name(self) -> str:
        if self.dataset:
            return self.dataset
        if self.layout == "synthetic":
            return "synthetic"
        return self.src.rstrip("/").rsplit("/", 1)[-1] or self.layout


def list_sequences(config: PrepareConfig) -> list[Sequence]:
    if config.layout == "png16":
        return png16_sequences(config.src, config.depth_scale, config.invalid_value)
    if config.layout == "npy":
        return npy_sequences(config.src)
    if config.layout == "sintel":
        return sintel_sequences(config.src, config.sintel_pass)
    options = config.synthetic
    synthetic = SyntheticConfig(
        frames=options.frames,
        height=options.height,
        width=options.width,
        open_far_side=options.open_far_side,
    )
    return synthetic_sequences(options.sequences, synthetic, seed=options.seed)


def _marker(config: PrepareConfig, sequence: str) -> str:
    return join(config.dst, "_done", f"{sequence}.json")


class _ShardWriter:
    """Row groups into `<dst>/shards/<sequence>-NNNN.parquet`, rolling at shard_mb."""

    def __init__(self, config: PrepareConfig, sequence: str) -> None:
        self.config = config
        self.sequence = sequence
        self.files: list[str] = []
        self._stream = None
        self._writer = None
        self._bytes = 0

    def write(self, row: dict[str, Any]) -> None:
        table = rows_to_table([row])
        if self._writer is None or self._bytes >= self.config.shard_mb * 2**20:
            self.close()
            name = f"{self.sequence}-{len(self.files):04d}.parquet"
            uri = join(self.config.dst, "shards", name)
            self._stream = open_output(uri, self.config.s3)
            self._writer = pq.ParquetWriter(self._stream, SCHEMA, compression="zstd")
            self.files.append(f"shards/{name}")
            self._bytes = 0
        self._writer.write_table(table)
        self._bytes += table.nbytes

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._stream.close()
            self._writer = self._stream = None


def convert_sequence(sequence: Sequence, config: PrepareConfig) -> dict[str, Any]:
    """Convert one sequence; returns its summary, or {'sequence', 'error'} on a bad source."""
    marker = _marker(config, sequence.name)
    if exists(marker, config.s3):
        summary = json.loads(read_bytes(marker, config.s3))
        return {**summary, "skipped": True}
    start = time.perf_counter()
    writer = _ShardWriter(config, sequence.name)
    chunk: list[FrameRecord] = []
    chunks = frames = 0
    size = None
    has_k = has_pose = True

    def flush() -> None:
        nonlocal chunk, chunks
        writer.write(
            encode_chunk(
                chunk,
                frames - len(chunk),
                dataset=config.dataset_name,
                sequence=sequence.name,
                split=config.split,
                chunk=chunks,
                frame_format=config.frame_format,
                depth_encoding=config.depth_encoding,
                depth_scale=config.png16_scale,
            )
        )
        chunks += 1
        chunk = []

    try:
        for frame in sequence.frames():
            if size is None:
                size = frame.depth.shape
            elif frame.depth.shape != size:
                raise LayoutError(
                    f"sequence {sequence.name!r}: frame {frames} is {frame.depth.shape}, "
                    f"earlier frames {size}"
                )
            has_k &= frame.intrinsics is not None
            has_pose &= frame.c2w is not None
            chunk.append(frame)
            frames += 1
            if len(chunk) == config.chunk_frames:
                flush()
        if chunk:
            flush()
        if frames == 0:
            raise LayoutError(f"sequence {sequence.name!r} has no frames")
    except (LayoutError, ValueError, OSError) as error:
        writer.close()
        return {"sequence": sequence.name, "error": str(error)}
    writer.close()
    summary = {
        "sequence": sequence.name,
        "frames": frames,
        "chunks": chunks,
        "shards": writer.files,
        "height": int(size[0]),
        "width": int(size[1]),
        "has_intrinsics": bool(has_k),
        "has_poses": bool(has_pose),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if sequence.numbers is not None and sequence.numbers != list(range(frames)):
        summary["frame_numbers"] = [int(n) for n in sequence.numbers[:frames]]
    write_bytes(marker, json.dumps(summary).encode(), config.s3)
    return summary


def _max_depth(config: PrepareConfig) -> float | None:
    if config.max_depth is not None:
        return config.max_depth
    if config.layout == "synthetic":
        o = config.synthetic
        probe = SyntheticConfig(frames=1, height=o.height, width=o.width)
        return SyntheticScene(probe, seed=0).max_depth
    return None


def prepare(config: PrepareConfig, progress=print) -> dict[str, Any]:
    """Convert every sequence (Ray tasks), then write and return the manifest."""
    import ray

    sequences = list_sequences(config)
    if not sequences:
        raise LayoutError(f"no sequences found for layout {config.layout!r} under {config.src!r}")
    start_ray()
    task = ray.remote(num_cpus=config.cpus_per_sequence, max_retries=2)(convert_sequence)
    pending = [task.remote(sequence, config) for sequence in sequences]
    results = []
    report = JobProgress(len(sequences), "vda prepare", progress, unit="sequences")
    while pending:
        done, pending = ray.wait(pending, timeout=report.every_s)
        for result in ray.get(done):
            results.append(result)
            state = (
                "FAILED: " + result["error"]
                if "error" in result
                else ("already done" if result.get("skipped") else f"{result['frames']} frames")
            )
            report.item(f"{result['sequence']}: {state}")
            report.finished("error" not in result, result.get("frames", 0))
        report.tick()
    report.final()
    report.close()
    converted = sorted((r for r in results if "error" not in r), key=lambda r: r["sequence"])
    failed = sorted((r for r in results if "error" in r), key=lambda r: r["sequence"])
    for entry in converted:
        entry.pop("skipped", None)
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": config.dataset_name,
        "benchmark": config.benchmark_name,
        "layout": config.layout,
        "split": config.split,
        "depth_kind": "depth",
        "metric": config.metric,
        "max_depth": _max_depth(config),
        "frame_format": config.frame_format,
        "depth_encoding": config.depth_encoding,
        "chunk_frames": config.chunk_frames,
        "totals": {
            "sequences": len(converted),
            "frames": sum(r["frames"] for r in converted),
            "chunks": sum(r["chunks"] for r in converted),
            "failed": len(failed),
        },
        "resolutions": sorted({f"{r['height']}x{r['width']}" for r in converted}),
        "sequences": converted,
        "failed": failed,
    }
    write_bytes(
        join(config.dst, "manifest.json"), json.dumps(manifest, indent=2).encode(), config.s3
    )
    return manifest
