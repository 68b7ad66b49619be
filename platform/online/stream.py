"""A live source through the online engine: depth per frame, latency measured, drops counted."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vda.model.inference import OnlineDepthEngine, WindowConfig
from vda.model.precision import Precision, pick_device
from vda.model.transforms import DEFAULT_INPUT_SIZE
from vda.platform.video.decode import DecodeOptions
from vda.platform.video.live import LiveSource
from vda.platform.weights import Weights, read_weights

log = logging.getLogger(__name__)


@dataclass
class OnlineDepth:
    """One frame's result. `depth` is float32 (H, W) at the frame's size: relative
    disparity (larger is nearer), or metres for metric-* models."""

    index: int  # the source's frame number (frames dropped before it leave gaps)
    depth: np.ndarray
    image: np.ndarray  # the RGB frame it is the depth of
    latency_s: float  # from the frame being read to its depth being ready


class LatencyStats:
    """Per-frame latencies and the wall-clock rate of a run. Percentiles are over the last
    `window` frames (about an hour at 30 frames/s), so a camera running for days keeps
    bounded memory."""

    def __init__(self, window: int = 100_000) -> None:
        self.latencies: collections.deque[float] = collections.deque(maxlen=window)
        self.frames = 0
        self._first: float | None = None
        self._last: float | None = None

    def add(self, latency_s: float) -> None:
        now = time.perf_counter()
        self._first = now if self._first is None else self._first
        self._last = now
        self.frames += 1
        self.latencies.append(latency_s)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(list(self.latencies), q) * 1000) if self.latencies else 0.0

    @property
    def fps(self) -> float:
        """Frames out per second, first output to last (0 with fewer than two)."""
        if self.frames < 2 or self._last == self._first:
            return 0.0
        return (self.frames - 1) / (self._last - self._first)

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "latency_p50_ms": self.percentile_ms(50),
            "latency_p95_ms": self.percentile_ms(95),
            "fps": self.fps,
        }


class OnlineStream:
    """Iterate `OnlineDepth`s of a live source; closes the source when iteration ends
    (also on `close()` or leaving a `with` block). `dropped` and `latency` are live."""

    def __init__(
        self, engine: OnlineDepthEngine, source: LiveSource, weights: Weights | None = None
    ) -> None:
        self.engine = engine
        self.source = source
        self.weights = weights
        self.latency = LatencyStats()
        self._stopped = False

    @property
    def dropped(self) -> int:
        """Frames the source delivered that the model never saw (it was behind)."""
        return self.source.dropped

    @property
    def info(self):
        return self.source.info

    def stop(self) -> None:
        """End the iteration after the current frame (safe from a signal handler)."""
        self._stopped = True
        self.source.stop()

    def __iter__(self) -> Iterator[OnlineDepth]:
        try:
            for frame in self.source:
                depth = self.engine.step(frame.image)
                latency = time.perf_counter() - frame.captured
                self.latency.add(latency)
                yield OnlineDepth(frame.index, depth, frame.image, latency)
                if self._stopped:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> OnlineStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def online(
    source: str | int,
    checkpoint: str | Weights = "vits",
    *,
    device: str | torch.device | None = None,
    input_size: int = DEFAULT_INPUT_SIZE,
    precision: Precision = "auto",
    max_res: int = 1280,
    target_fps: float = -1.0,
    max_len: int = -1,
    window: int = 32,
    realtime: bool | None = None,
    queue_frames: int = 1,
) -> OnlineStream:
    """Depth for a live source, one frame at a time, with the official online mode:

        for result in vda.online(0, checkpoint="vits"):   # camera 0
            use(result.depth)

    `source`: a camera index, an rtsp:// / http(s):// (or other FFmpeg) stream URL, or a
    video file. `checkpoint`: a released name (vits, vitb, vitl, metric-*; fetched once
    into the Hugging Face cache), a file or an s3:// URI, or weights already read. A camera
    or stream that runs ahead of the model has its oldest waiting frames dropped
    (`stream.dropped` counts them); a file gives every frame unless `realtime=True` plays
    it at its frame rate. `vda depth --online` sets up its stream here too.
    """
    weights = checkpoint if isinstance(checkpoint, Weights) else read_weights(checkpoint)
    if weights.license and not isinstance(checkpoint, Weights):  # the caller announced its own
        log.info("checkpoint %s = %s: license %s", checkpoint, weights.source, weights.license)
    engine = OnlineDepthEngine(
        weights.load_model(),
        input_size,
        precision,
        pick_device(device),
        WindowConfig(length=window),
    )
    options = DecodeOptions(max_res=max_res, target_fps=target_fps, max_len=max_len)
    live = LiveSource(str(source), options, realtime=realtime, queue_frames=queue_frames)
    return OnlineStream(engine, live, weights)
