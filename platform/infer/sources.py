"""Videos opened from storage for the actors: files by ranged reads, image-sequence folders
image by image, and frames decoded on a thread of their own ahead of the model."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from ..storage import exists, join, list_files, open_input, read_bytes
from ..video import open_video
from ..video.sequence import (
    SIDECAR,
    ImageSequenceReader,
    decode_image,
    group_sequences,
    sidecar_fps,
)
from ..video.suffixes import FRAME_SUFFIXES
from .config import InferConfig


class DecodeAhead:
    """Frames decoded on a thread of their own, up to `prefetch` ahead of the consumer, from
    the moment it is made: a unit waiting for its actor's model decodes its first frames
    meanwhile. Close it (or use it as a context) so the thread stops with the unit."""

    _DONE = object()

    def __init__(self, frames: Iterator[Any], prefetch: int) -> None:
        self._buffer: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(frames,), daemon=True, name="decode"
        )
        self._thread.start()

    def _produce(self, frames: Iterator[Any]) -> None:
        try:
            for frame in frames:
                if not self._put(frame):
                    return
            self._put(self._DONE)
        except BaseException as error:  # handed to the consumer
            self._put(error)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._buffer.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop decoding, and wait for the thread (a frame, or a read up to `timeout_s`),
        so the video is not closed under it."""
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def __enter__(self) -> DecodeAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def threaded(frames: Iterator[Any], prefetch: int) -> Iterator[Any]:
    """Decode on a background thread, `prefetch` frames ahead, once iteration begins."""
    with DecodeAhead(frames, prefetch) as ahead:
        yield from ahead


class OpenedVideo:
    """A video opened from storage: a file streamed by ranged reads, or, for a URI ending
    in "/", an image sequence read image by image (the folder's direct children)."""

    def __init__(self, video: str, config: InferConfig) -> None:
        self._stream = None
        if video.endswith("/"):
            self._reader = _open_sequence(video, config)
            return
        self._stream = open_input(video, config.s3)
        try:
            self._reader = open_video(self._stream, config.decode, name=video)
        except BaseException:
            self._stream.close()
            raise

    def on_skip(self, callback) -> None:
        """Call `callback` now and then while frames before a segment's start are decoded."""
        self._reader.on_skip = callback

    def __enter__(self):
        return self._reader

    def __exit__(self, *exc: object) -> None:
        self._reader.close()
        if self._stream is not None:
            self._stream.close()


def _open_sequence(folder: str, config: InferConfig) -> ImageSequenceReader:
    files = [
        uri
        for uri in list_files(folder, FRAME_SUFFIXES, config.s3)
        if uri.rsplit("/", 1)[0] + "/" == folder
    ]
    files = group_sequences(files).get(folder, [])
    sidecar = join(folder, SIDECAR)
    data = read_bytes(sidecar, config.s3) if exists(sidecar, config.s3) else None
    fps = config.sequence_fps or sidecar_fps(data, sidecar)
    return ImageSequenceReader(
        files,
        config.decode,
        name=folder,
        fps=fps,
        load=lambda uri: decode_image(read_bytes(uri, config.s3), uri),
    )
