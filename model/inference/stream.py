"""The engine's view of a frame iterator: random access within a window, padded at the end.

A window needs frames out of order (frame 0, the key frame 10 before it, its
own) and frames past the end of the video (copies of the last one, as the
official code pads), while a stream must not hold the video. This buffer
gives both; `forget_before` drops what no later window needs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class PaddedStream:
    """Random access to (index, frame) pairs within a sliding range, padded with the last frame.

    Frames beyond the end of the video are copies of the last one, as the
    official code pads; `is_real` tells them apart. Frames before
    `forget_before` are dropped, so memory stays at about one window. The
    indices may skip (a segment of a long video needs frame 0, then frames
    from just before its first window on), but must increase.
    """

    def __init__(self, frames: Iterable[tuple[int, np.ndarray]]) -> None:
        self._frames = iter(frames)
        self._buffer: dict[int, np.ndarray] = {}
        self._next = 0
        self.length: int | None = None  # known once the iterator is exhausted
        self._last: np.ndarray | None = None

    def _read_until(self, index: int) -> None:
        while self.length is None and self._next <= index:
            item = next(self._frames, None)
            if item is None:
                self.length = self._next
                break
            position, frame = item
            self._buffer[position] = frame
            self._last = frame
            self._next = position + 1

    def get(self, index: int) -> np.ndarray:
        self._read_until(index)
        if self.length is not None and index >= self.length:
            return self._last
        return self._buffer[index]

    def has_frame(self, index: int) -> bool:
        self._read_until(index)
        return self.length is None or index < self.length

    def is_real(self, index: int) -> bool:
        return self.has_frame(index)

    def forget_before(self, index: int) -> None:
        for old in [i for i in self._buffer if i < index]:
            del self._buffer[old]
