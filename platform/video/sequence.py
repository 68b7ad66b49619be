"""Image-sequence folders as videos: `shot_010/0001.png ...` in, frames out, numbers kept.

VFX work keeps shots as numbered frames, not as encoded video. A folder of
PNG, JPEG, TIFF or EXR files is one video here: frames in name order with
numbers compared as numbers (`9.png` before `10.png`), the number in each
name kept as the output's frame number. The frame rate comes from
`--sequence-fps` or a `sequence.json` (`{"fps": 24}`) in the folder, else 24.
EXR frames are scene-linear: they are clipped to [0, 1] and given the sRGB
transfer curve, which is what the network's training images look like;
16-bit PNG/TIFF frames are scaled to 8 bits.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from .decode import DecodeOptions, VideoDecodeError, VideoInfo, output_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")
DEFAULT_SEQUENCE_FPS = 24.0
SIDECAR = "sequence.json"


def natural_key(name: str) -> list:
    """`shot_9` < `shot_10`: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_number(name: str, position: int) -> int:
    """The last number in a file's stem (`shot_010.1001.exr` -> 1001), else its position."""
    numbers = re.findall(r"\d+", Path(name).stem)
    return int(numbers[-1]) if numbers else position


def sequence_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def srgb_from_linear(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear.astype(np.float32), 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(encoded * 255).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 (H, W, 3) frame from a local image file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise VideoDecodeError(
            f"image {str(path)!r} of a sequence cannot be read: {error}"
        ) from error
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    """An RGB uint8 (H, W, 3) frame from an image file's bytes (`name` gives the format)."""
    try:
        if name.lower().endswith(".exr"):
            from .pointcloud import read_exr

            with tempfile.NamedTemporaryFile(suffix=".exr") as handle:  # OpenEXR reads paths
                handle.write(data)
                handle.flush()
                image = srgb_from_linear(read_exr(Path(handle.name)))
        else:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError("not a readable image")
            if image.dtype == np.uint16:
                image = (image.astype(np.float32) / 257).round().astype(np.uint8)
            if image.ndim == 3:  # OpenCV decodes BGR(A)
                image = image[..., 2::-1] if image.shape[2] >= 3 else image[..., :1]
    except Exception as error:
        raise VideoDecodeError(f"image {name!r} of a sequence cannot be read: {error}") from error
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def group_sequences(uris: list[str]) -> dict[str, list[str]]:
    """Image files grouped by the folder (prefix) that holds them, each group in frame order."""
    groups: dict[str, list[str]] = {}
    for uri in uris:
        if uri.lower().endswith(IMAGE_SUFFIXES):
            groups.setdefault(uri.rsplit("/", 1)[0] + "/", []).append(uri)
    return {
        folder: sorted(files, key=lambda u: natural_key(u.rsplit("/", 1)[-1]))
        for folder, files in sorted(groups.items())
    }


class ImageSequenceReader:
    """The `VideoReader` interface over a folder of numbered images."""

    def __init__(
        self,
        files: list[str],
        options: DecodeOptions,
        name: str,
        fps: float | None = None,
        load: Callable[[str], np.ndarray] | None = None,
    ):
        """`files` in frame order (local paths, or URIs that `load` reads)."""
        self.name = name
        self.options = options
        self._load = load or (lambda file: read_image(Path(file)))
        if not files:
            raise VideoDecodeError(
                f"folder {name!r} holds no images ({', '.join(IMAGE_SUFFIXES)}) to read as a sequence"
            )
        source_fps = fps or DEFAULT_SEQUENCE_FPS
        target = options.target_fps
        stride = max(round(source_fps / target), 1) if target > 0 else 1
        files = files[::stride]
        if options.max_len > 0:
            files = files[: options.max_len]
        self._files = files
        first = self._load(files[0])
        self._first = first
        height, width = first.shape[:2]
        out_h, out_w = output_size(height, width, options.max_res)
        numbers = [frame_number(f.rsplit("/", 1)[-1], i) for i, f in enumerate(map(str, files))]
        if len(set(numbers)) != len(numbers):  # names without distinct numbers: positions
            numbers = list(range(len(files)))
        self.frame_numbers = numbers
        self.info = VideoInfo(
            name=name,
            width=out_w,
            height=out_h,
            source_width=width,
            source_height=height,
            fps=float(target if target > 0 else source_fps),
            source_fps=float(source_fps),
            stride=stride,
            rotation=0,
            codec="image-sequence:" + str(files[0]).rsplit(".", 1)[-1].lower(),
            frame_count_hint=len(files),
            frame_numbers=tuple(numbers),
        )

    @property
    def frame_count_estimate(self) -> int:
        return len(self._files)  # exact: the folder lists them

    def _frame(self, position: int) -> np.ndarray:
        image = self._first if position == 0 else self._load(self._files[position])
        if image.shape[:2] != (self.info.source_height, self.info.source_width):
            raise VideoDecodeError(
                f"image {str(self._files[position])!r} is {image.shape[1]}x{image.shape[0]}, the "
                f"sequence's first frame {self.info.source_width}x{self.info.source_height}"
            )
        if (self.info.height, self.info.width) != image.shape[:2]:
            image = cv2.resize(
                image, (self.info.width, self.info.height), interpolation=cv2.INTER_AREA
            )
        return image

    def frames(self) -> Iterator[np.ndarray]:
        for position in range(len(self._files)):
            yield self._frame(position)

    def indexed_frames(self, start: int, seek: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Frame 0, then frames from `start` on: files are random access, so seeking is exact."""
        del seek
        yield 0, self._frame(0)
        for position in range(max(1, start), len(self._files)):
            yield position, self._frame(position)

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSequenceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sidecar_fps(data: bytes | None, name: str) -> float | None:
    """The fps of a `sequence.json` sidecar's bytes (None when there is none)."""
    if data is None:
        return None
    try:
        return float(json.loads(data)["fps"])
    except (ValueError, KeyError, TypeError) as error:
        raise VideoDecodeError(f'{name!r}: expected {{"fps": number}}: {error}') from error


def open_folder(
    folder: Path, options: DecodeOptions, name: str, fps: float | None = None
) -> ImageSequenceReader:
    sidecar = folder / SIDECAR
    fps = fps or sidecar_fps(sidecar.read_bytes() if sidecar.exists() else None, str(sidecar))
    return ImageSequenceReader([str(p) for p in sequence_files(folder)], options, name, fps)
