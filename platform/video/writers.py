"""Streaming writers for one video's depth: float16 arrays, 16-bit PNGs, previews, metadata.

Everything is written frame by frame into a local staging folder, so memory
does not grow with the video; the batch job uploads finished files and
commits them. Depth arrays go in compressed `.npz` files of `chunk_frames`
frames (`depth_00000.npz`, ...), or a single `depth.npz` when the video fits
in one chunk. Each holds `depth` (float16 by default, or float32; N x H x W)
and `frame_index`.

Previews are colour-mapped with one range for the whole video, never per
frame (per-frame normalisation makes a preview flicker even when the depth
does not). The range comes from the first `warmup` frames (their 1st / 99th
percentiles) and afterwards only ever widens; 16-bit PNGs use a fixed scale
chosen the same way (metric depth: millimetres), recorded in the metadata.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np

from .decode import VideoInfo
from .pointcloud import Intrinsics, unproject, write_exr, write_ply

PNG16_MAX = 65535
METRIC_PNG_SCALE = 0.001  # metres per unit: millimetres, as ScanNet stores depth
SMALL_FRAME = 640 * 360  # pixels: a preview this small is encoded in one thread


@dataclass
class OutputOptions:
    depth_npz: bool = True
    depth_dtype: Literal["float16", "float32"] = "float16"  # float32: exact, twice the bytes
    # zlib level of the .npz files (numpy's own is 6): 1 costs about half the CPU for files
    # about 6 % larger (`vda bench infer --stages`); 0 stores them uncompressed
    depth_compression: int = 1
    chunk_frames: int = 256
    png16: bool = False
    preview: bool = True  # inferno colour map, H.264 mp4
    # x264 preset of previews: ultrafast costs about a fifth of the CPU of veryfast per frame
    # for larger files; a preview is for looking at, and the CPU is the GPU node's bottleneck
    preview_preset: str = "ultrafast"
    # x264 threads per preview; 0: one below SMALL_FRAME pixels, where threads cost more
    # than they save (16 frames of 112 x 112: 4.0 ms of encoding at 1 thread, 5.8 at x264's
    # choice, 2 cores), x264's own choice above (a fast model must not wait on its preview)
    preview_threads: int = 0
    grayscale: bool = False
    side_by_side: bool = False  # RGB | depth
    warmup: int = 32  # frames that fix the preview range
    exr: bool = False  # exr/<video>_000000.exr per frame, channel Z
    exr_half: bool = False  # half floats instead of float32
    ply: bool = False  # ply/<video>_000000.ply coloured point clouds (metric models)
    ply_every: int = 10  # a cloud every N output frames
    focal_length_x: float | None = None  # pixels of the source video (or a sidecar per video)
    focal_length_y: float | None = None
    principal_x: float | None = None  # default: the image centre
    principal_y: float | None = None

    def __post_init__(self) -> None:
        if self.preview_threads < 0:
            raise ValueError("outputs.preview_threads must be 0 (by frame size) or a count")
        if not 0 <= self.depth_compression <= 9:
            raise ValueError("outputs.depth_compression must be a zlib level, 0 to 9")

    def intrinsics(self) -> Intrinsics | None:
        if self.focal_length_x is None and self.focal_length_y is None:
            return None
        fx = self.focal_length_x or self.focal_length_y
        return Intrinsics(fx, self.focal_length_y or fx, self.principal_x, self.principal_y)


def write_npz(path: Path, level: int, **arrays: np.ndarray) -> None:
    """An .npz (what np.load reads) at a zlib level of our choosing: np.savez_compressed
    has no level, and its 6 is the largest CPU cost around the model on a GPU node."""
    method = zipfile.ZIP_DEFLATED if level > 0 else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method, compresslevel=level or None) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array))


class _Mp4Sink:
    """An H.264 (libx264) mp4 written frame by frame; odd sizes are padded to even."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        preset: str = "veryfast",
        threads: int = 0,
    ) -> None:
        self.path = path
        self._container = av.open(str(path), "w")
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if not threads and width * height < SMALL_FRAME:
            threads = 1
        self._stream.options = {"crf": "20", "preset": preset, "threads": str(threads)}

    def write(self, rgb: np.ndarray, layout: str = "rgb24") -> None:
        """One frame, RGB (or `layout="bgr24"`: OpenCV's order, with no reordering copy)."""
        pad_h = self._stream.height - rgb.shape[0]
        pad_w = self._stream.width - rgb.shape[1]
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=layout)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


def ranked(values: np.ndarray, fraction: float) -> float:
    """The value at `fraction` of the sorted values (the lower one, no interpolation): one
    partition, without np.percentile's fixed cost (0.1 ms a call, per preview frame)."""
    flat = values.ravel()
    rank = int(fraction * (flat.size - 1))
    return float(np.partition(flat, rank)[rank])


def grayscale(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """Depth to uint8 over one fixed range (a preview's, never per frame: that flickers)."""
    unit = np.clip((depth - low) / (high - low), 0, 1)
    return (unit * 255).astype(np.uint8)


def inferno(gray: np.ndarray) -> np.ndarray:
    """The previews' colour map (BGR), near = bright for disparity. OpenCV's own table
    passed as a user colour map: the same pixels, without rebuilding the table each call
    (0.18 ms a frame, most of the call on a small frame)."""
    return cv2.applyColorMap(gray, _inferno_table())


@functools.cache
def _inferno_table() -> np.ndarray:
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_INFERNO)


class DepthOutputs:
    """All outputs of one video, streamed into `folder`.

    `on_file_done(path)` is called for every finished file (depth chunks as
    they fill, the rest at `close`), so a caller can upload and delete them.
    """

    def __init__(
        self,
        folder: Path,
        info: VideoInfo,
        options: OutputOptions | None = None,
        metric: bool = False,
        on_file_done: Callable[[Path], None] | None = None,
        intrinsics: Intrinsics | None = None,
    ) -> None:
        options = options or OutputOptions()
        self.intrinsics: Intrinsics | None = None
        if options.ply:
            if not metric:
                raise ValueError(
                    "point clouds (ply) need metric depth: use a metric_* checkpoint (relative "
                    "disparity has no scale in metres)"
                )
            chosen = intrinsics or options.intrinsics()
            if chosen is None:
                raise ValueError(
                    "point clouds (ply) need intrinsics: --focal-length-x/--focal-length-y "
                    "(outputs.focal_length_x/_y) or a <video>.intrinsics.json sidecar"
                )
            self.intrinsics = chosen.at_size(
                info.width, info.height, info.source_width, info.source_height
            )
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.info = info
        self.options = options
        self._stem = Path(info.name).stem or "video"  # per-video names never collide
        self.metric = metric
        self._on_file_done = on_file_done or (lambda path: None)
        self._chunk: list[np.ndarray] = []
        self._chunk_index: list[int] = []
        self._chunks_written = 0
        self._files: list[str] = []
        self._warm: list[tuple[int, np.ndarray, np.ndarray | None]] = []
        self._range: tuple[float, float] | None = None
        self._png_scale: float | None = METRIC_PNG_SCALE if metric else None
        self._png_clipped = 0
        self._sinks: dict[str, _Mp4Sink] = {}
        self.frames = 0

    # -- public ---------------------------------------------------------------
    def write(self, index: int, depth: np.ndarray, rgb: np.ndarray | None = None) -> None:
        if depth.shape != (self.info.height, self.info.width):
            raise ValueError(
                f"depth of shape {depth.shape} for a {self.info.height}x{self.info.width} video"
            )
        self.frames += 1
        index = self.info.frame_number(index)  # image sequences keep their source numbers
        if self.options.exr:
            self._write_exr(index, depth)
        if self.options.ply and (self.frames - 1) % max(1, self.options.ply_every) == 0:
            self._write_ply(index, depth, rgb)
        if self.options.depth_npz:
            self._chunk.append(depth.astype(self.options.depth_dtype))
            self._chunk_index.append(index)
            if len(self._chunk) == self.options.chunk_frames:
                self._flush_chunk(final=False)
        if self._needs_range():
            if self._range is None:
                self._warm.append((index, depth, rgb))
                if len(self._warm) >= self.options.warmup:
                    self._settle_range()
            else:
                self._render(index, depth, rgb)

    def close(self, metadata: dict[str, Any] | None = None) -> list[str]:
        """Finish every file and write metadata.json; returns the file names written."""
        if self._needs_range() and self._range is None:
            self._settle_range()
        if self._chunk:
            self._flush_chunk(final=True)
        for sink in self._sinks.values():
            sink.close()
            self._done(sink.path)
        meta = {
            "source": self.info.name,
            "frames": self.frames,
            "fps": self.info.fps,
            "source_fps": self.info.source_fps,
            "width": self.info.width,
            "height": self.info.height,
            "source_width": self.info.source_width,
            "source_height": self.info.source_height,
            "rotation": self.info.rotation,
            # frame_index in the .npz files: numbers from the file names, or the decoded frame
            "frame_numbers": "source" if self.info.frame_numbers else "decoded",
            "frame_stride": self.info.stride,
            "depth_kind": "metric_depth_m" if self.metric else "relative_disparity",
            "depth_dtype": self.options.depth_dtype,
            "depth_files": [f for f in self._files if f.startswith("depth")],
            "preview_range": list(self._range) if self._range else None,
        }
        if self.intrinsics is not None:
            meta["intrinsics"] = dataclasses.asdict(self.intrinsics)  # at the output size
        if self.options.png16:
            meta["png16_scale"] = self._png_scale
            meta["png16_clipped_pixels"] = self._png_clipped
        meta.update(metadata or {})
        path = self.folder / "metadata.json"
        path.write_text(json.dumps(meta, indent=2, sort_keys=True))
        self._done(path)
        return list(self._files)

    # -- internals ------------------------------------------------------------
    def _write_exr(self, index: int, depth: np.ndarray) -> None:
        folder = self.folder / "exr"
        folder.mkdir(exist_ok=True)
        path = write_exr(folder / f"{self._stem}_{index:06d}.exr", depth, self.options.exr_half)
        self._done(path)

    def _write_ply(self, index: int, depth: np.ndarray, rgb: np.ndarray | None) -> None:
        folder = self.folder / "ply"
        folder.mkdir(exist_ok=True)
        colours = rgb.reshape(-1, 3) if rgb is not None else None
        points = unproject(depth, self.intrinsics)
        self._done(write_ply(folder / f"{self._stem}_{index:06d}.ply", points, colours))

    def _done(self, path: Path) -> None:
        self._files.append(str(path.relative_to(self.folder)))
        self._on_file_done(path)

    def _flush_chunk(self, final: bool) -> None:
        single = final and self._chunks_written == 0
        name = "depth.npz" if single else f"depth_{self._chunks_written:05d}.npz"
        path = self.folder / name
        write_npz(
            path,
            self.options.depth_compression,
            depth=np.stack(self._chunk),
            frame_index=np.asarray(self._chunk_index, dtype=np.int64),
        )
        self._chunks_written += 1
        self._chunk, self._chunk_index = [], []
        self._done(path)

    def _needs_range(self) -> bool:
        o = self.options
        return o.preview or o.grayscale or o.side_by_side or o.png16

    def _settle_range(self) -> None:
        if not self._warm:
            self._range = (0.0, 1.0)
            return
        # every other pixel of every other row: a 1-99 % range does not need every pixel
        values = np.concatenate([d[::2, ::2].ravel() for _, d, _ in self._warm])
        low, high = ranked(values, 0.01), ranked(values, 0.99)
        if high <= low:
            high = low + 1e-6
        self._range = (low, high)
        if self._png_scale is None:
            # relative disparity: twice the warm-up maximum fits in 16 bits
            peak = max(float(d.max()) for _, d, _ in self._warm)
            self._png_scale = max(peak * 2, 1e-6) / PNG16_MAX
        warm, self._warm = self._warm, []
        for index, depth, rgb in warm:
            self._render(index, depth, rgb)

    def _render(self, index: int, depth: np.ndarray, rgb: np.ndarray | None) -> None:
        low, high = self._range
        # a strided sample: the range only ever widens, and a full-frame percentile (a
        # partition of every pixel) was the largest CPU cost of a preview frame
        frame_high = ranked(depth[::4, ::4], 0.99)
        if frame_high > high:  # widen only, so the preview never flickers back
            high = frame_high
            self._range = (low, high)
        gray = grayscale(depth, low, high)
        o = self.options
        if o.preview or o.side_by_side:
            colour_bgr = inferno(gray)
            if o.preview:  # the encoder converts from BGR itself: no reordered copy
                self._sink("preview.mp4").write(colour_bgr, layout="bgr24")
            if o.side_by_side:
                colour = colour_bgr[..., ::-1]
                left = rgb if rgb is not None else np.zeros_like(colour)
                self._sink("side_by_side.mp4", width=2 * depth.shape[1]).write(
                    np.concatenate([left, colour], axis=1)
                )
        if o.grayscale:
            self._sink("preview_gray.mp4").write(np.repeat(gray[..., None], 3, axis=2))
        if o.png16:
            scaled = np.round(depth / self._png_scale)
            self._png_clipped += int((scaled > PNG16_MAX).sum())
            png_dir = self.folder / "png16"
            png_dir.mkdir(exist_ok=True)
            path = png_dir / f"{index:06d}.png"
            cv2.imwrite(str(path), np.clip(scaled, 0, PNG16_MAX).astype(np.uint16))
            self._done(path)

    def _sink(self, name: str, width: int | None = None) -> _Mp4Sink:
        if name not in self._sinks:
            self._sinks[name] = _Mp4Sink(
                self.folder / name,
                width or self.info.width,
                self.info.height,
                self.info.fps,
                preset=self.options.preview_preset,
                threads=self.options.preview_threads,
            )
        return self._sinks[name]


def write_video(path: Path, frames, fps: float) -> Path:
    """Write RGB frames as an H.264 mp4 (for synthetic test and demo videos)."""
    sink = None
    for frame in frames:
        if sink is None:
            sink = _Mp4Sink(Path(path), frame.shape[1], frame.shape[0], fps)
        sink.write(frame)
    if sink is None:
        raise ValueError("no frames to write")
    sink.close()
    return Path(path)
