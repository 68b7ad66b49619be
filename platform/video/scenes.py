"""Scene cuts: the window chain restarts at each cut, as if every shot were its own video.

A key frame from before a cut is a wrong reference after it: the scale/shift
fit would map the new shot onto the old one. Cuts are found while decoding
with PySceneDetect's `ContentDetector` (HSV content change between adjacent
frames), in its SUPPRESS flash-filter mode, which reports a cut on the frame
that starts the new shot, so no frame of a new shot ever enters the old
shot's windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from vda.model.inference import StreamingDepthEngine, WindowAlignment


@dataclass
class SceneCutOptions:
    enabled: bool = False
    threshold: float = 27.0  # ContentDetector's default
    min_scene_len: int = 15  # frames between two cuts at least


class CutDetector:
    def __init__(self, options: SceneCutOptions, fps: float = 30.0) -> None:
        from scenedetect.detector import FlashFilter
        from scenedetect.detectors import ContentDetector

        self._detector = ContentDetector(
            threshold=options.threshold,
            min_scene_len=options.min_scene_len,
            filter_mode=FlashFilter.Mode.SUPPRESS,
        )
        self._fps = float(fps) if fps and fps > 0 else 30.0  # PySceneDetect refuses int fps

    def is_cut(self, index: int, rgb: np.ndarray) -> bool:
        """Whether frame `index` (fed in order, every frame once) starts a new shot."""
        from scenedetect.common import FrameTimecode

        bgr = np.ascontiguousarray(rgb[..., ::-1])
        cuts = self._detector.process_frame(FrameTimecode(index, fps=self._fps), bgr)
        return index > 0 and any(cut.frame_num == index for cut in cuts)


@dataclass
class ShotRunner:
    """Runs the engine shot by shot over one frame stream, recording the cuts."""

    engine: StreamingDepthEngine
    detector: CutDetector
    cuts: list[int] = field(default_factory=list)
    alignments: list[WindowAlignment] = field(default_factory=list)

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index in the video, depth): each shot through a fresh window chain."""
        source = enumerate(frames)
        pending = next(source, None)
        if pending is not None:
            self.detector.is_cut(*pending)
        while pending is not None:
            start = pending[0]

            def shot() -> Iterator[np.ndarray]:
                nonlocal pending
                while pending is not None:
                    yield pending[1]
                    pending = next(source, None)
                    if pending is not None and self.detector.is_cut(*pending):
                        self.cuts.append(pending[0])
                        return

            for offset, depth in self.engine.run(shot()):
                yield start + offset, depth
            self.alignments.extend(self.engine.alignments)
