"""One video through the streaming engine into its outputs: shared by `vda depth` and `vda infer`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from vda.model.inference import StreamingDepthEngine

from .writers import DepthOutputs


@dataclass
class VideoResult:
    frames: int
    seconds: float
    files: list[str]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def depth_for_video(
    engine: StreamingDepthEngine,
    frames: Iterable[np.ndarray],
    outputs: DepthOutputs,
    metadata: dict | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Decode, infer and write one video, frame by frame.

    The RGB frames are kept only until their depth is written (side-by-side
    previews need them), which is at most about one window of frames.
    """
    start = time.perf_counter()
    waiting: dict[int, np.ndarray] = {}

    def tee() -> Iterator[np.ndarray]:
        for index, frame in enumerate(frames):
            if outputs.options.side_by_side:
                waiting[index] = frame
            yield frame

    for index, depth in engine.run(tee()):
        outputs.write(index, depth, waiting.pop(index, None))
        if on_frame is not None:
            on_frame(index)
    files = outputs.close(metadata)
    return VideoResult(frames=outputs.frames, seconds=time.perf_counter() - start, files=files)
