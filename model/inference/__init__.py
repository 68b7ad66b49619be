"""Long-video inference: the official key-frame windowing, streamed, with an encoder cache.

The official algorithm (Video Depth Anything `infer_video_depth`):
- windows of `length` = 32 slots advance by `stride` = 22 frames; the video is
  padded with copies of its last frame to fill the final window;
- the first `overlap` = 10 slots of every window after the first are context:
  frame 0, the frame `key_offset` = 10 before the window start, and the
  `interp` = 8 frames the window shares with the previous one;
- each window's predictions are resized (bilinear, align_corners) to the
  decoded frame size; one least-squares scale and shift over every pixel of
  the two key slots maps them onto the earlier predictions of the same frames
  (metric models skip this); the 8 shared frames are blended linearly from
  the old to the new prediction (weights 0 ... 1); the rest are appended;
  aligned predictions are clamped at 0.

What this implementation adds:
- streaming (`engine`, `stream`): frames come from an iterator and depths
  leave as soon as they are final (everything but the last `interp` frames
  of the latest window), so memory is one window, whatever the video length;
- the encoder runs once per frame (`engine`): the context slots' features
  were computed in the previous window and are cached (the head still sees
  all 32 slots);
- the diff-CNN branch gets each slot's frame index (`engine`), so key-frame
  slots get no frame difference;
- autocast on CUDA (fp16 as the official code, or bf16), fp32 on CPU, and
  micro-batched encoder and high-resolution head stages (`engine`, with the
  type chosen by `vda.model.precision`);
- the two halves of the algorithm are apart: the network part of a window
  (`engine`: `StreamingDepthEngine.raw_windows`) depends only on frames,
  never on earlier outputs, so any run of windows can be computed on its own
  (the bulk job splits long videos that way); the sequential part
  (`alignment`: `WindowAligner`: scale/shift chain, blending, clamping) needs
  only those raw windows, in order. The single engine is exactly the two
  chained;
- per-window alignment statistics (scale, shift, key-frame fit residual),
  the quality signals of an archive nobody can watch (`alignment`).

Modules: `config` (window geometry, speed levers, settings), `alignment`
(the sequential half), `stream` (the frame buffer), `engine` (the network
half and the single engine), `online` (the official online mode: one frame
at a time, no window). Every name is importable from this package.
"""

from .alignment import (
    RawWindow,
    WindowAligner,
    WindowAlignment,
    blend_weights,
    fit_residual,
    resize_depth,
)
from .config import InferenceConfig, SpeedOptions, WindowConfig
from .engine import StageSeconds, StreamingDepthEngine, compiled
from .online import OnlineDepthEngine, OnlineSchedule
from .stream import PaddedStream

__all__ = [
    "InferenceConfig",
    "OnlineDepthEngine",
    "OnlineSchedule",
    "PaddedStream",
    "RawWindow",
    "SpeedOptions",
    "StageSeconds",
    "StreamingDepthEngine",
    "WindowAligner",
    "WindowAlignment",
    "WindowConfig",
    "blend_weights",
    "compiled",
    "fit_residual",
    "resize_depth",
]
