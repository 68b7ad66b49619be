"""`vda depth --online`: one live source through the online engine into the usual outputs.

The writers are `vda depth`'s (depth arrays, previews, PNG / EXR / PLY), run on
a thread of their own so that writing never makes the model fall behind the
source; the optional MJPEG preview gets every depth map as it comes out.
A stop request (Ctrl-C) ends the run after the current frame, and the
outputs are closed as for a finished file.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import numpy as np

from vda.platform.video.process import VideoResult, write_depths
from vda.platform.video.writers import DepthOutputs

from .preview import MjpegPreview
from .stream import OnlineStream


@contextlib.contextmanager
def stop_on_interrupt(stream: OnlineStream) -> Iterator[None]:
    """The first Ctrl-C stops the stream after its current frame (a second one aborts).
    Where SIGINT is ignored (`nohup`, a background job of a script) it stays ignored."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if threading.current_thread() is not threading.main_thread() or ignored:
        yield
        return

    def first(signum: int, frame: object) -> None:
        stream.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def write_online(
    stream: OnlineStream,
    outputs: DepthOutputs,
    metadata: Callable[[], dict],
    preview: MjpegPreview | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Every depth of `stream` into `outputs` (and `preview`); metadata is taken at the end."""
    waiting: dict[int, np.ndarray] = {}
    keep_rgb = outputs.options.side_by_side or outputs.options.ply

    def depths() -> Iterator[tuple[int, np.ndarray]]:
        for result in stream:
            if keep_rgb:
                waiting[result.index] = result.image
            if preview is not None:
                preview.publish(result.depth)
            yield result.index, result.depth

    with stop_on_interrupt(stream):
        return write_depths(
            depths(),
            outputs,
            metadata,
            rgb=lambda index: waiting.pop(index, None),
            on_frame=on_frame,
            background=True,
        )
