"""Per-frame EXR depth and coloured point clouds: the files VFX and 3D tools read.

EXR goes through the OpenEXR bindings (one `Z` channel, float32 or half,
ZIP-compressed), as the official release writes depth for compositing.
Point clouds unproject metric depth through pinhole intrinsics and are
written as binary PLY with `plyfile`; relative disparity has no scale in
metres, so it is refused rather than turned into a cloud of the wrong shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the source video; the principal point
    defaults to the image centre."""

    fx: float
    fy: float
    cx: float | None = None
    cy: float | None = None

    def at_size(self, width: int, height: int, source_width: int, source_height: int) -> Intrinsics:
        """The same camera for frames resized from the source size to width x height."""
        sx, sy = width / source_width, height / source_height
        cx = self.cx if self.cx is not None else (source_width - 1) / 2
        cy = self.cy if self.cy is not None else (source_height - 1) / 2
        # pixel centres sit at +0.5: scale about the image corner, not the first centre
        return Intrinsics(self.fx * sx, self.fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5)

    @classmethod
    def from_sidecar(cls, path: Path) -> Intrinsics:
        """`{"fx": ..., "fy": ..., "cx": ..., "cy": ...}` (cx, cy optional)."""
        try:
            values = json.loads(Path(path).read_text())
            return cls(
                float(values["fx"]),
                float(values["fy"]),
                None if values.get("cx") is None else float(values["cx"]),
                None if values.get("cy") is None else float(values["cy"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"intrinsics file {path}: {error}") from error


def sidecar_intrinsics(video: Path) -> Path:
    """Where a video's own intrinsics are looked for: `<video stem>.intrinsics.json` beside it."""
    return video.with_name(video.stem + ".intrinsics.json")


def unproject(depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(H, W) metric depth -> (H*W, 3) camera-frame points (x right, y down, z forward)."""
    height, width = depth.shape
    cx = intrinsics.cx if intrinsics.cx is not None else (width - 1) / 2
    cy = intrinsics.cy if intrinsics.cy is not None else (height - 1) / 2
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    z = depth.astype(np.float32)
    x = (u - cx) * z / intrinsics.fx
    y = (v - cy) * z / intrinsics.fy
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


def write_ply(path: Path, points: np.ndarray, colours: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY of (N, 3) points and optional (N, 3) uint8 colours."""
    from plyfile import PlyData, PlyElement

    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colours is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(len(points), dtype=fields)
    vertices["x"], vertices["y"], vertices["z"] = points.T
    if colours is not None:
        vertices["red"], vertices["green"], vertices["blue"] = colours.T
    PlyData([PlyElement.describe(vertices, "vertex")]).write(str(path))
    return Path(path)


def write_exr(path: Path, depth: np.ndarray, half: bool = False) -> Path:
    """One `Z` channel, float32 (or half), ZIP-compressed scanlines."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channel = np.ascontiguousarray(depth.astype(np.float16 if half else np.float32))
    with OpenEXR.File(header, {"Z": channel}) as exr:
        exr.write(str(path))
    return Path(path)


def read_exr(path: Path) -> np.ndarray:
    """The first channel of an EXR (Z for depth; an RGB image comes back (H, W, 3))."""
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        channels = exr.channels()
        name = "Z" if "Z" in channels else next(iter(channels))
        return np.asarray(channels[name].pixels)
