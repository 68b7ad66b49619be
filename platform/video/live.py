"""Frames from a live source for the online mode: a camera, a network stream, or a file.

What a live source must not do is queue: a camera delivers frames at its own
rate whether or not the model keeps up, and a frame that waits behind others
is stale by the time its depth comes out. So a reader thread takes frames as
they arrive into a queue of `queue_frames` (1 by default: the model always
gets the newest frame) and, when it is full, drops the oldest waiting one
and counts it. The latency of a frame is measured from the moment it was
read, so time spent waiting shows.

- a camera index (`0`, `1`, ...): OpenCV's capture (V4L2, AVFoundation,
  DirectShow, whatever the platform has);
- `rtsp://`, `rtmp://`, `udp://`, `http(s)://` ...: PyAV (FFmpeg's network
  protocols), the decoder of every other job;
- a file: read at the model's pace, every frame, no drops (a file does not
  run away); with `realtime` it is paced at its frame rate instead, as a
  camera would deliver it, and drops frames like one.
"""

from __future__ import annotations

import collections
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from ..core.config import ConfigError
from .decode import DecodeOptions, VideoDecodeError, VideoInfo, VideoReader, output_size
from .opener import open_video

STREAM_SCHEMES = (
    "rtsp",
    "rtsps",
    "rtmp",
    "rtmps",
    "rtmpt",
    "rtp",
    "udp",
    "tcp",
    "srt",
    "rist",
    "mms",
    "http",
    "https",
)
NETWORK_TIMEOUT_US = 15_000_000  # a stream silent this long is over (FFmpeg's rw_timeout)


@dataclass
class LiveFrame:
    index: int  # the source's frame number (dropped frames leave gaps)
    image: np.ndarray  # RGB uint8 (H, W, 3) at the output size
    captured: float  # time.perf_counter() when it was read from the source


def source_kind(source: str) -> str:
    """ "camera", "stream" or "file" for what a user typed."""
    if re.fullmatch(r"\d+", source):
        return "camera"
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in STREAM_SCHEMES:
        return "stream"
    if scheme:
        raise VideoDecodeError(
            f"unsupported source {redacted(source)!r}: a file, a camera index or one of "
            f"{', '.join(s + '://' for s in STREAM_SCHEMES)}"
        )
    return "file"


def redacted(source: str) -> str:
    """The source as it may be printed or recorded. A URL's user and password (everything
    before the host's last `@`, so a password may hold `@`) and its query (tokens,
    `password=`) never reach a message, a file name or metadata.json."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def source_name(source: str) -> str:
    """A folder name for a source's outputs: the file's stem, `camera0`, or the stream's
    host and last path part (never its credentials or query; never a path that leaves the
    output folder)."""
    kind = source_kind(source)
    if kind == "camera":
        return f"camera{int(source)}"
    if kind == "file":
        return Path(source).stem or "video"
    parts = urlsplit(source)
    host = (parts.hostname or "stream").replace(".", "-")
    tail = Path(parts.path.rstrip("/")).stem
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{host}_{tail}" if tail else host).strip("_")
    return name or "stream"


class _Camera:
    """An OpenCV capture behind the reader interface (`info`, `frames()`, `close()`)."""

    def __init__(self, index: int, options: DecodeOptions) -> None:
        self._capture = cv2.VideoCapture(index)
        ok, first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok:
            self._capture.release()
            raise VideoDecodeError(f"camera {index} cannot be opened or delivers no frames")
        height, width = first.shape[:2]
        out_h, out_w = output_size(height, width, options.max_res)
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 30.0)
        self.info = VideoInfo(
            name=f"camera{index}",
            width=out_w,
            height=out_h,
            source_width=width,
            source_height=height,
            fps=fps,
            source_fps=fps,
            stride=1,
            rotation=0,
            codec="camera",
            frame_count_hint=None,
        )
        self._first = first
        self._max_len = options.max_len

    def _rgb(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.shape[:2] != (self.info.height, self.info.width):
            bgr = cv2.resize(bgr, (self.info.width, self.info.height))
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frames(self) -> Iterator[np.ndarray]:
        frame, kept = self._first, 0
        while frame is not None:
            yield self._rgb(frame)
            kept += 1
            if 0 < self._max_len <= kept:
                return
            ok, frame = self._capture.read()
            frame = frame if ok else None

    def close(self) -> None:
        self._capture.release()


class LiveSource:
    """Iterate LiveFrames from a source; `dropped` counts frames the model never saw.

    Use as a context manager (the reader thread and the source close on exit).
    """

    def __init__(
        self,
        source: str,
        options: DecodeOptions | None = None,
        realtime: bool | None = None,
        queue_frames: int = 1,
    ) -> None:
        options = options or DecodeOptions()
        self.kind = source_kind(source)
        if queue_frames < 1:
            raise ConfigError(f"queue_frames must be at least 1, got {queue_frames}")
        self.display = redacted(source)
        self._source = source
        if self.kind == "camera":
            self._reader = _Camera(int(source), options)
        elif self.kind == "stream":
            try:
                self._reader = VideoReader(
                    source,
                    options,
                    name=self.display,
                    open_options={"rw_timeout": str(NETWORK_TIMEOUT_US)},
                )
            except VideoDecodeError as error:  # FFmpeg's message repeats the URL as given
                raise VideoDecodeError(str(error).replace(source, self.display)) from None
        else:
            self._reader = open_video(source, options)
        self.info = self._reader.info
        self.info.name = source_name(source)
        # a camera or a stream is live; a file only when asked to play in real time
        self.realtime = self.kind != "file" if realtime is None else realtime
        self.dropped = 0
        self.read = 0
        self._queue: collections.deque[LiveFrame] = collections.deque()
        self._queue_frames = queue_frames
        self._ready = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None
        self.ended_by: str | None = None  # why a source stopped early (redacted), if it did
        self._delivered = 0
        self._stop = threading.Event()
        self._reader_closed = False
        self._thread: threading.Thread | None = None
        if self.realtime:
            self._thread = threading.Thread(target=self._read_live, daemon=True, name="live")
            self._thread.start()

    def _read_live(self) -> None:
        paced = self.kind == "file"  # a camera or a stream paces itself
        start = time.perf_counter()
        try:
            for index, image in enumerate(self._reader.frames()):
                if self._stop.is_set():
                    break
                if paced:  # deliver frame `index` at its presentation time, not before
                    delay = start + index / self.info.fps - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        break
                with self._ready:
                    self.read += 1
                    if len(self._queue) >= self._queue_frames:
                        self._queue.popleft()  # the oldest waiting frame is stale: drop it
                        self.dropped += 1
                    self._queue.append(LiveFrame(index, image, time.perf_counter()))
                    self._ready.notify()
        except BaseException as error:  # handed to the consumer
            self._error = error
        finally:
            with self._ready:
                self._finished = True
                self._ready.notify_all()
                if self._stop.is_set():  # close() is waiting or gave up waiting: close here
                    self._close_reader()

    def _close_reader(self) -> None:
        if not self._reader_closed:
            self._reader_closed = True
            with contextlib.suppress(Exception):
                self._reader.close()

    def _ended(self, error: BaseException) -> None:
        """A source that fails after delivering frames has ended (a camera unplugged, a
        stream dropped): the frames so far stand, and `ended_by` says why. One that never
        delivered a frame is an error. Either way the URL in the message is redacted."""
        message = str(error).replace(self._source, self.display)
        if not self._delivered:
            if isinstance(error, VideoDecodeError):
                raise VideoDecodeError(message) from None
            raise error
        self.ended_by = message

    def __iter__(self) -> Iterator[LiveFrame]:
        if not self.realtime:
            try:
                for index, image in enumerate(self._reader.frames()):
                    self.read += 1
                    self._delivered += 1
                    yield LiveFrame(index, image, time.perf_counter())
                    if self._stop.is_set():
                        return
            except VideoDecodeError as error:
                self._ended(error)
            return
        while True:
            with self._ready:
                while not self._queue and not self._finished and not self._stop.is_set():
                    self._ready.wait(timeout=1.0)
                if self._queue and not self._stop.is_set():
                    frame = self._queue.popleft()
                elif self._error is not None and not self._stop.is_set():
                    error, self._error = self._error, None
                    self._ended(error)
                    return
                else:
                    return
            self._delivered += 1
            yield frame

    def stop(self) -> None:
        """End the iteration at the next frame boundary (safe from a signal handler: it only
        sets a flag; a waiting consumer notices within a second)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is None:
            self._close_reader()
            return
        self._thread.join(timeout=5)
        with self._ready:
            self._queue.clear()
            if self._finished:  # else the reader thread closes it when its read returns
                self._close_reader()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
