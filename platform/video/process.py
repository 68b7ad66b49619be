"""One video's depths into its outputs: shared by `vda depth`, `vda infer` and the stitch of
split videos.

The model must never wait for output work: with `background=True` the
writers (float16/float32 compression, H.264 previews, PNGs, and the uploads
they trigger) run on a thread of their own behind a bounded queue, beside the
model. The queue bounds memory (at most `queue_frames` depth maps wait), and
a full queue makes the model wait rather than memory grow (back-pressure).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from vda.model.inference import StreamingDepthEngine

from .scenes import CutDetector, SceneCutOptions, ShotRunner
from .writers import DepthOutputs


@dataclass
class DepthCounts:
    """Pixels seen, and how many were zero or not finite: a video whose depth collapsed shows."""

    pixels: int = 0
    zero: int = 0
    nonfinite: int = 0

    def add(self, depth: np.ndarray) -> None:
        self.pixels += depth.size
        finite = np.isfinite(depth)
        self.nonfinite += int(depth.size - finite.sum())
        self.zero += int((depth[finite] == 0).sum())

    @property
    def zero_share(self) -> float:
        return self.zero / self.pixels if self.pixels else 0.0

    @property
    def nonfinite_share(self) -> float:
        return self.nonfinite / self.pixels if self.pixels else 0.0


@dataclass
class VideoResult:
    frames: int
    seconds: float
    files: list[str]
    counts: DepthCounts
    writer_wait_s: float = 0.0  # time the model spent blocked on a full writer queue
    scene_cuts: list[int] = field(default_factory=list)  # with scene cuts on
    shot_alignments: list | None = None  # every shot's window alignments, with scene cuts on

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class BackgroundWriter:
    """`write(*args)` calls run on a thread of their own, behind a queue of `queue_items`.

    `write` blocks while the queue is full (back-pressure: memory stays
    bounded and the producer slows down instead). An error on the thread is
    raised in the caller at its next `write` or at `join`, so a failed upload
    fails the video, never silently; items after an error are dropped.
    """

    _STOP = object()

    def __init__(self, target: Callable[..., None], queue_items: int = 32) -> None:
        self._target = target
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_items))
        self._error: BaseException | None = None
        self.wait_s = 0.0  # time callers spent blocked on a full queue
        self._thread = threading.Thread(target=self._drain, daemon=True, name="writer")
        self._thread.start()

    def _drain(self) -> None:
        while (item := self._queue.get()) is not self._STOP:
            if self._error is None:
                try:
                    self._target(*item)
                except BaseException as error:  # handed to the caller
                    self._error = error

    def write(self, *args: object) -> None:
        if self._error is not None:
            raise self._error
        start = time.perf_counter()
        self._queue.put(args)
        self.wait_s += time.perf_counter() - start

    def join(self) -> None:
        """Wait for every queued item; raise the thread's error if there was one."""
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error


def write_depths(
    depths: Iterable[tuple[int, np.ndarray]],
    outputs: DepthOutputs,
    metadata: dict | Callable[[], dict] | None = None,
    rgb: Callable[[int], np.ndarray | None] | None = None,
    on_frame: Callable[[int], None] | None = None,
    background: bool = False,
    queue_frames: int = 32,
    model_done: Callable[[], None] | None = None,
) -> VideoResult:
    """Write (index, depth) pairs through `outputs`; `metadata` may be a callable evaluated
    at the end (the alignment statistics are known only then). `model_done` is called once
    the last depth has arrived, before the writers finish: a bulk actor hands its model to
    the next video there, while this one's files are completed."""
    start = time.perf_counter()
    counts = DepthCounts()
    writer = BackgroundWriter(outputs.write, queue_frames) if background else None
    write = writer.write if writer is not None else outputs.write
    try:
        for index, depth in depths:
            counts.add(depth)
            write(index, depth, rgb(index) if rgb is not None else None)
            if on_frame is not None:
                on_frame(index)
        if model_done is not None:
            model_done()
    finally:
        if writer is not None:
            writer.join()
    files = outputs.close(metadata() if callable(metadata) else metadata)
    return VideoResult(
        frames=outputs.frames,
        seconds=time.perf_counter() - start,
        files=files,
        counts=counts,
        writer_wait_s=writer.wait_s if writer is not None else 0.0,
    )


def depth_for_video(
    engine: StreamingDepthEngine,
    frames: Iterable[np.ndarray],
    outputs: DepthOutputs,
    metadata: dict | Callable[[], dict] | None = None,
    on_frame: Callable[[int], None] | None = None,
    background: bool = False,
    queue_frames: int = 32,
    scene_cuts: SceneCutOptions | None = None,
    model_done: Callable[[], None] | None = None,
) -> VideoResult:
    """Decode, infer and write one video, frame by frame.

    The RGB frames are kept only until their depth is written (side-by-side
    previews and point clouds need them), at most about one window of frames.
    With `scene_cuts.enabled` the window chain restarts at every cut; the cuts
    and all shots' alignments go into the metadata.
    """
    waiting: dict[int, np.ndarray] = {}
    keep_rgb = outputs.options.side_by_side or outputs.options.ply

    def tee() -> Iterator[np.ndarray]:
        for index, frame in enumerate(frames):
            if keep_rgb:
                waiting[index] = frame
            yield frame

    runner = None
    if scene_cuts is not None and scene_cuts.enabled:
        runner = ShotRunner(engine, CutDetector(scene_cuts, outputs.info.fps))
        depths = runner.run(tee())
        inner = metadata

        def metadata() -> dict:
            values = dict((inner() if callable(inner) else inner) or {})
            values["scene_cuts"] = list(runner.cuts)
            values["alignments"] = [dataclasses.asdict(a) for a in runner.alignments]
            return values

    else:
        depths = engine.run(tee())
    result = write_depths(
        depths,
        outputs,
        metadata,
        rgb=lambda index: waiting.pop(index, None),
        on_frame=on_frame,
        background=background,
        queue_frames=queue_frames,
        model_done=model_done,
    )
    if runner is not None:
        result.scene_cuts, result.shot_alignments = list(runner.cuts), list(runner.alignments)
    return result
