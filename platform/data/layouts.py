"""Readers of raw video-depth layouts: each yields sequences of FrameRecords, lazily.

Every reader goes through `vda.platform.storage`, so a source can be a local
folder or an s3:// prefix. Depth comes out in metres with a validity mask;
poses come out camera-to-world (OpenCV axes), converted at the reader when a
format stores world-to-camera (Sintel), so the shards hold one convention.

Layouts:
- `png16`: `<src>/<sequence>/{rgb,depth}/` with matching file stems; depth as
  16-bit PNG times `depth_scale` (KITTI 1/256, ScanNet 1/1000, Bonn 1/5000,
  VKITTI 1/100 with 65535 = sky, given as `invalid_value`); 0 is invalid.
  Optional `intrinsics.txt` (3x3, or fx fy cx cy) and `poses.txt` (one
  camera-to-world matrix per line: 16 or 12 numbers).
- `npy`: as png16, with depth in metres as `.npy` / `.npz` (key `depth`, or
  the only array).
- `sintel`: MPI-Sintel: `<src>/<pass>/<seq>/frame_0001.png`,
  `<src>/depth/<seq>/frame_0001.dpt`, `<src>/camdata_left/<seq>/frame_0001.cam`.
- `synthetic`: the procedural generator.
"""

from __future__ import annotations

import io
import posixpath
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..storage import list_files, read_bytes
from ..video.sequence import frame_number
from ..video.suffixes import IMAGE_SUFFIXES
from .shards import FrameRecord, decode_frame
from .synthetic import SyntheticConfig, SyntheticScene

SINTEL_TAG = 202021.25


class LayoutError(ValueError):
    """A raw sequence that cannot be converted; the message says which file and why."""


@dataclass
class Sequence:
    """A named sequence whose frames are read when iterated."""

    name: str
    frames: Callable[[], Iterator[FrameRecord]]
    length: int
    # each frame's number from its file name (`frame_0001.png` -> 1), recorded in the
    # manifest so that outputs of the image sequence match ground truth by number
    numbers: list[int] | None = None


def _stem(uri: str) -> str:
    return posixpath.splitext(posixpath.basename(uri))[0]


def _group_by_sequence(files: list[str], root: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    prefix = root.rstrip("/") + "/"
    for uri in files:
        relative = uri[len(prefix) :] if uri.startswith(prefix) else uri
        parts = relative.split("/")
        if len(parts) >= 2:  # <sequence>/<file> or deeper
            groups.setdefault(parts[0], []).append(uri)
    return groups


def _read_rgb(uri: str) -> np.ndarray:
    try:
        return decode_frame(read_bytes(uri))
    except ValueError as error:
        raise LayoutError(f"unreadable image {uri}") from error


def parse_intrinsics(text: str) -> np.ndarray:
    """3 x 3, `fx fy cx cy`, or 4 x 4 (ScanNet's `intrinsic_depth.txt`: its top-left 3 x 3)."""
    values = [float(v) for v in text.split()]
    if len(values) == 9:
        return np.asarray(values).reshape(3, 3)
    if len(values) == 16:
        return np.asarray(values).reshape(4, 4)[:3, :3].copy()
    if len(values) == 4:
        fx, fy, cx, cy = values
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    raise LayoutError(f"intrinsics need 9, 16 or 4 numbers, got {len(values)}")


def parse_poses(text: str) -> list[np.ndarray]:
    poses = []
    for number, line in enumerate(text.strip().splitlines(), start=1):
        values = [float(v) for v in line.split()]
        if len(values) not in (12, 16):
            raise LayoutError(
                f"poses.txt line {number}: expected 12 or 16 numbers, got {len(values)}"
            )
        pose = np.eye(4)
        pose[: len(values) // 4] = np.asarray(values).reshape(-1, 4)
        poses.append(pose)
    return poses


def _frame_folder_sequences(
    src: str, depth_suffixes: tuple[str, ...], load_depth
) -> list[Sequence]:
    groups = _group_by_sequence(list_files(src), src)
    sequences = []
    for name, files in sorted(groups.items()):
        base = posixpath.join(src.rstrip("/"), name)
        images = {
            _stem(f): f
            for f in files
            if f.startswith(f"{base}/rgb/") and f.lower().endswith(IMAGE_SUFFIXES)
        }
        depths = {
            _stem(f): f
            for f in files
            if f.startswith(f"{base}/depth/") and f.lower().endswith(depth_suffixes)
        }
        intrinsics_uri = next((f for f in files if f == f"{base}/intrinsics.txt"), None)
        poses_uri = next((f for f in files if f == f"{base}/poses.txt"), None)
        stems = sorted(images)
        sequences.append(
            Sequence(
                name,
                _frame_folder_reader(
                    name, stems, images, depths, intrinsics_uri, poses_uri, load_depth
                ),
                len(stems),
                [frame_number(stem, i) for i, stem in enumerate(stems)],
            )
        )
    return sequences


def _frame_folder_reader(name, stems, images, depths, intrinsics_uri, poses_uri, load_depth):
    def frames() -> Iterator[FrameRecord]:
        if not stems:
            raise LayoutError(f"sequence {name!r} has no frames in rgb/")
        k = parse_intrinsics(read_bytes(intrinsics_uri).decode()) if intrinsics_uri else None
        poses = parse_poses(read_bytes(poses_uri).decode()) if poses_uri else None
        if poses is not None and len(poses) != len(stems):
            raise LayoutError(f"sequence {name!r}: {len(poses)} poses for {len(stems)} frames")
        for i, stem in enumerate(stems):
            if stem not in depths:
                raise LayoutError(f"sequence {name!r}: frame {stem!r} has no depth file")
            rgb = _read_rgb(images[stem])
            depth, valid = load_depth(depths[stem])
            if depth.shape != rgb.shape[:2]:
                raise LayoutError(
                    f"sequence {name!r}: frame {stem!r} depth {depth.shape} vs image {rgb.shape[:2]}"
                )
            yield FrameRecord(rgb, depth, valid, k, None if poses is None else poses[i])

    return frames


def png16_sequences(
    src: str, depth_scale: float, invalid_value: int | None = None
) -> list[Sequence]:
    def load(uri: str) -> tuple[np.ndarray, np.ndarray]:
        raw = cv2.imdecode(np.frombuffer(read_bytes(uri), np.uint8), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
            raise LayoutError(f"{uri} is not a single-channel 16-bit PNG")
        valid = raw > 0
        if invalid_value is not None:
            valid &= raw != invalid_value
        return np.where(valid, raw.astype(np.float32) * np.float32(depth_scale), 0), valid

    return _frame_folder_sequences(src, (".png",), load)


def npy_sequences(src: str) -> list[Sequence]:
    def load(uri: str) -> tuple[np.ndarray, np.ndarray]:
        data = read_bytes(uri)
        try:
            loaded = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as error:
            raise LayoutError(f"{uri} is not a readable .npy/.npz file") from error
        if isinstance(loaded, np.lib.npyio.NpzFile):
            key = (
                "depth"
                if "depth" in loaded.files
                else (loaded.files[0] if len(loaded.files) == 1 else None)
            )
            if key is None:
                raise LayoutError(f"{uri} has no 'depth' array: {loaded.files}")
            loaded = loaded[key]
        depth = np.asarray(loaded, dtype=np.float32)
        if depth.ndim != 2:
            raise LayoutError(f"{uri}: depth must be 2-D, got shape {depth.shape}")
        valid = np.isfinite(depth) & (depth > 0)
        return np.where(valid, depth, 0), valid

    return _frame_folder_sequences(src, (".npy", ".npz"), load)


def read_sintel_depth(data: bytes, name: str = "<dpt>") -> np.ndarray:
    """Sintel .dpt: float32 tag 202021.25, int32 width, int32 height, float32 depth."""
    if len(data) < 12:
        raise LayoutError(f"{name} is too short for a .dpt header")
    tag, width, height = struct.unpack("<fii", data[:12])
    if abs(tag - SINTEL_TAG) > 1e-3:
        raise LayoutError(f"{name}: wrong .dpt tag {tag} (expected {SINTEL_TAG})")
    count = width * height
    if len(data) != 12 + 4 * count:
        raise LayoutError(f"{name}: {len(data) - 12} data bytes for a {width}x{height} map")
    return np.frombuffer(data, "<f4", count=count, offset=12).reshape(height, width).copy()


def read_sintel_camera(data: bytes, name: str = "<cam>") -> tuple[np.ndarray, np.ndarray]:
    """Sintel .cam: float32 tag, 3x3 float64 intrinsics, 3x4 float64 world-to-camera.

    Returns (intrinsics, camera-to-world).
    """
    if len(data) != 4 + 8 * 21:
        raise LayoutError(f"{name}: {len(data)} bytes is not a .cam file")
    (tag,) = struct.unpack("<f", data[:4])
    if abs(tag - SINTEL_TAG) > 1e-3:
        raise LayoutError(f"{name}: wrong .cam tag {tag} (expected {SINTEL_TAG})")
    values = np.frombuffer(data, "<f8", count=21, offset=4)
    intrinsics = values[:9].reshape(3, 3).copy()
    w2c = np.eye(4)
    w2c[:3] = values[9:].reshape(3, 4)
    return intrinsics, np.linalg.inv(w2c)


def sintel_sequences(src: str, render_pass: str = "final") -> list[Sequence]:
    root = src.rstrip("/")
    images = _group_by_sequence(
        list_files(f"{root}/{render_pass}", IMAGE_SUFFIXES), f"{root}/{render_pass}"
    )
    sequences = []
    for name, files in sorted(images.items()):
        stems = sorted(_stem(f) for f in files)
        by_stem = {_stem(f): f for f in files}

        def frames(name=name, stems=stems, by_stem=by_stem) -> Iterator[FrameRecord]:
            for stem in stems:
                depth_uri = f"{root}/depth/{name}/{stem}.dpt"
                camera_uri = f"{root}/camdata_left/{name}/{stem}.cam"
                try:
                    depth = read_sintel_depth(read_bytes(depth_uri), depth_uri)
                except Exception as error:
                    raise LayoutError(f"sequence {name!r}: frame {stem!r}: {error}") from error
                rgb = _read_rgb(by_stem[stem])
                if depth.shape != rgb.shape[:2]:
                    raise LayoutError(
                        f"sequence {name!r}: frame {stem!r} depth {depth.shape} vs image {rgb.shape[:2]}"
                    )
                k, c2w = read_sintel_camera(read_bytes(camera_uri), camera_uri)
                valid = np.isfinite(depth) & (depth > 0)
                yield FrameRecord(rgb, np.where(valid, depth, 0), valid, k, c2w)

        numbers = [frame_number(stem, i) for i, stem in enumerate(stems)]
        sequences.append(Sequence(name, frames, len(stems), numbers))
    return sequences


def synthetic_sequences(count: int, config: SyntheticConfig, seed: int = 0) -> list[Sequence]:
    def reader(index: int) -> Callable[[], Iterator[FrameRecord]]:
        def frames() -> Iterator[FrameRecord]:
            scene = SyntheticScene(config, seed=seed * 100_003 + index)
            for frame in scene.frames():
                yield FrameRecord(frame.rgb, frame.depth, frame.valid, frame.intrinsics, frame.c2w)

        return frames

    return [Sequence(f"synthetic_{seed}_{i:04d}", reader(i), config.frames) for i in range(count)]
