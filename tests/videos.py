"""Real encoded test videos, written with OpenCV (mp4v) or PyAV (H.264)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def moving_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """RGB frames of a texture sliding right by 2 px per frame."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(height, width + 2 * count, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (5, 5), 0)
    return [np.ascontiguousarray(texture[:, 2 * t : 2 * t + width]) for t in range(count)]


def write_mp4v(path: Path, frames: list[np.ndarray], fps: float = 12.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV could not open an mp4v writer"
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    return path


def write_h264(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 24,
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> Path:
    """H.264 by default; codec="ffv1", pix_fmt="bgr0" in .mkv gives lossless odd sizes."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def shot_frames(count: int, height: int, width: int, colour: int, flip: bool = False):
    """RGB frames of one synthetic shot: a gradient and a slowly moving disc. Two shots of
    different `colour` (one flipped) are a scene cut to a content detector."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        image = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, colour)], -1)
        image = np.ascontiguousarray(image.astype(np.uint8))
        centre = (int(width * 0.2 + t * 0.5), height // 2)
        cv2.circle(image, centre, height // 5, (255 - colour, colour, 128), -1)
        frames.append(image[::-1, ::-1].copy() if flip else image)
    return frames
