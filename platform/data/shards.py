"""The clip shard format: Parquet rows of consecutive-frame chunks, plus a manifest.

One row = one chunk of up to `chunk_frames` consecutive frames of one sequence:

| column | type | content |
| --- | --- | --- |
| dataset, sequence, split | string | ids |
| chunk | int32 | chunk number within the sequence |
| frame_index | list<int32> | frame numbers in the sequence |
| height, width | int32 | frame size |
| frame_format | string | `png` (lossless) or `jpeg` |
| frames | list<binary> | encoded RGB frames |
| depth_encoding | string | `f16` (raw float16, H*W*2 bytes) or `png16` |
| depth_scale | float64 | png16: value * scale = depth; f16: 1 |
| depth | list<binary> | encoded depth (or disparity) maps |
| valid | list<binary> | np.packbits of each frame's validity mask |
| intrinsics | list<float64>, nullable | T x 3 x 3, row-major |
| c2w | list<float64>, nullable | T x 4 x 4 camera-to-world, OpenCV axes |

The manifest (`manifest.json` beside the shards) records counts, resolution,
depth kind (depth or disparity, metric or relative), the evaluation cap and
the sequences that failed to convert, with their reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import pyarrow as pa

FORMAT_VERSION = 1
FrameFormat = Literal["png", "jpeg"]
DepthEncoding = Literal["f16", "png16"]

SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("sequence", pa.string()),
        ("split", pa.string()),
        ("chunk", pa.int32()),
        ("frame_index", pa.list_(pa.int32())),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("frame_format", pa.string()),
        ("frames", pa.list_(pa.binary())),
        ("depth_encoding", pa.string()),
        ("depth_scale", pa.float64()),
        ("depth", pa.list_(pa.binary())),
        ("valid", pa.list_(pa.binary())),
        ("intrinsics", pa.list_(pa.float64())),
        ("c2w", pa.list_(pa.float64())),
    ]
)


@dataclass
class FrameRecord:
    """One frame as readers produce it and the pipeline consumes it."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32; depth in metres or disparity, see the manifest
    valid: np.ndarray  # (H, W) bool
    intrinsics: np.ndarray | None = None  # (3, 3)
    c2w: np.ndarray | None = None  # (4, 4)


@dataclass
class Chunk:
    """A decoded row."""

    dataset: str
    sequence: str
    chunk: int
    frame_index: np.ndarray  # (T,)
    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32
    valid: np.ndarray  # (T, H, W) bool
    intrinsics: np.ndarray | None  # (T, 3, 3)
    c2w: np.ndarray | None  # (T, 4, 4)


def encode_frame(rgb: np.ndarray, frame_format: FrameFormat, jpeg_quality: int = 95) -> bytes:
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if frame_format == "png":
        ok, data = cv2.imencode(".png", bgr)
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ValueError(f"cannot encode a {rgb.shape} frame as {frame_format}")
    return data.tobytes()


def decode_frame(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot decode an encoded frame")
    return image[..., ::-1]


def encode_depth(depth: np.ndarray, encoding: DepthEncoding, scale: float) -> bytes:
    if encoding == "f16":
        return depth.astype(np.float16).tobytes()
    values = np.clip(np.round(depth / scale), 0, 65535).astype(np.uint16)
    ok, data = cv2.imencode(".png", values)
    if not ok:
        raise ValueError("cannot encode depth as 16-bit PNG")
    return data.tobytes()


def decode_depth(data: bytes, encoding: str, scale: float, height: int, width: int) -> np.ndarray:
    if encoding == "f16":
        return np.frombuffer(data, np.float16).reshape(height, width).astype(np.float32)
    values = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return values.astype(np.float32) * np.float32(scale)


def encode_chunk(
    frames: list[FrameRecord],
    first_index: int,
    *,
    dataset: str,
    sequence: str,
    split: str,
    chunk: int,
    frame_format: FrameFormat = "png",
    depth_encoding: DepthEncoding = "f16",
    depth_scale: float = 1.0,
) -> dict[str, Any]:
    height, width = frames[0].depth.shape
    for i, frame in enumerate(frames):
        if frame.depth.shape != (height, width) or frame.rgb.shape[:2] != (height, width):
            raise ValueError(
                f"frame {first_index + i}: size {frame.rgb.shape[:2]} / depth {frame.depth.shape} "
                f"differs from the sequence's {height}x{width}"
            )
    has_k = all(f.intrinsics is not None for f in frames)
    has_pose = all(f.c2w is not None for f in frames)
    return {
        "dataset": dataset,
        "sequence": sequence,
        "split": split,
        "chunk": chunk,
        "frame_index": list(range(first_index, first_index + len(frames))),
        "height": height,
        "width": width,
        "frame_format": frame_format,
        "frames": [encode_frame(f.rgb, frame_format) for f in frames],
        "depth_encoding": depth_encoding,
        "depth_scale": float(depth_scale if depth_encoding == "png16" else 1.0),
        "depth": [
            encode_depth(np.where(f.valid, f.depth, 0), depth_encoding, depth_scale) for f in frames
        ],
        "valid": [np.packbits(f.valid.astype(bool)).tobytes() for f in frames],
        "intrinsics": np.stack([f.intrinsics for f in frames]).ravel().tolist() if has_k else None,
        "c2w": np.stack([f.c2w for f in frames]).ravel().tolist() if has_pose else None,
    }


def decode_chunk(row: dict[str, Any], frames: slice | None = None) -> Chunk:
    """Decode a row (optionally only `frames`, a slice of its frames: the rest stay encoded)."""
    select = frames or slice(None)
    height, width = int(row["height"]), int(row["width"])
    indices = np.asarray(row["frame_index"], dtype=np.int64)[select]
    rgb = np.stack([decode_frame(b) for b in list(row["frames"])[select]])
    depth = np.stack(
        [
            decode_depth(b, row["depth_encoding"], row["depth_scale"], height, width)
            for b in list(row["depth"])[select]
        ]
    )
    valid = np.stack(
        [
            np.unpackbits(np.frombuffer(b, np.uint8), count=height * width)
            .reshape(height, width)
            .astype(bool)
            for b in list(row["valid"])[select]
        ]
    )
    intrinsics = row.get("intrinsics")
    c2w = row.get("c2w")
    return Chunk(
        dataset=row["dataset"],
        sequence=row["sequence"],
        chunk=int(row["chunk"]),
        frame_index=indices,
        rgb=rgb,
        depth=depth,
        valid=valid,
        intrinsics=None
        if intrinsics is None
        else np.asarray(intrinsics, dtype=np.float64).reshape(-1, 3, 3)[select],
        c2w=None if c2w is None else np.asarray(c2w, dtype=np.float64).reshape(-1, 4, 4)[select],
    )


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)
