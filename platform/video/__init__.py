"""Video decoding and depth output writers (no Ray): shared by `vda depth` and `vda infer`."""

from .decode import (
    DecodeOptions,
    SeekMismatch,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
)
from .opener import open_video
from .writers import DepthOutputs, OutputOptions

__all__ = [
    "DecodeOptions",
    "DepthOutputs",
    "OutputOptions",
    "SeekMismatch",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "open_video",
]
