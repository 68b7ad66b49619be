"""Configuration of `vda depth`: local videos on this machine, or one live source.

The keys follow `vda infer`'s where the two jobs share a concept (`decode.*`,
`outputs.*`, `speed.*`, `scene_cuts.*`, `input_size`, `precision`), so a
setting tried on a few videos here carries over to the archive unchanged.
Every flag of `vda depth` is a shorthand for one key (docs/depth.md lists them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from vda.model.inference import SpeedOptions
from vda.model.precision import Precision
from vda.model.transforms import DEFAULT_INPUT_SIZE

from ..core.config import ConfigError
from .decode import DecodeOptions
from .scenes import SceneCutOptions
from .writers import OutputOptions


@dataclass
class OnlineOptions:
    """The official online mode over one live source (`--online SOURCE`)."""

    source: str | None = None  # a camera index ("0"), an rtsp:// or http(s):// URL, or a file
    realtime: bool = False  # a file played at its frame rate, frames dropped as a camera's
    queue_frames: int = 1  # frames that may wait for the model; beyond them the oldest drops
    serve_preview: str | None = None  # "[HOST:]PORT": the live depth as MJPEG over HTTP

    def __post_init__(self) -> None:
        if self.queue_frames < 1:
            raise ValueError(f"online.queue_frames must be at least 1, got {self.queue_frames}")
        if self.serve_preview is not None:
            self.preview_address()  # checked now, not after the model has loaded

    def preview_address(self) -> tuple[str, int] | None:
        if self.serve_preview is None:
            return None
        host, _, port = self.serve_preview.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"online.serve_preview takes [HOST:]PORT, got {self.serve_preview!r}")
        return host or "127.0.0.1", int(port)


@dataclass
class DepthConfig:
    videos: list[str] = field(default_factory=list)  # files, or folders of numbered images
    output: str = "outputs"  # a folder per video under it
    checkpoint: str = "vits"  # a released name, a file or s3://; NAME.onnx with engine onnx
    engine: Literal["torch", "onnx"] = "torch"
    device: str | None = None  # cuda, cuda:1, cpu; None: the first GPU if there is one
    sequence_fps: float | None = None  # image folders: else their sequence.json, else 24
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    input_size: int = DEFAULT_INPUT_SIZE
    precision: Precision = "auto"  # vda.model.precision: fp16 on CUDA, fp32 off CUDA
    window: int = 32  # frames per window (the official 32)
    cache_encoder: bool = True  # reuse the context frames' encoder features
    speed: SpeedOptions = field(default_factory=SpeedOptions)  # the engine's speed levers
    scene_cuts: SceneCutOptions = field(default_factory=SceneCutOptions)
    online: OnlineOptions = field(default_factory=OnlineOptions)

    def __post_init__(self) -> None:
        if self.online.source is None:
            if not self.videos:  # whole sentences: said as they are, not as "config: ..."
                raise ConfigError("name at least one video (or a live source with --online SOURCE)")
            return
        if self.videos:
            raise ConfigError("--online takes one source; name videos without it")
        levers = replace(self.speed, compile=False) != replace(SpeedOptions(), compile=False)
        offline_only = {  # named by their flags, the way most runs give them
            "--engine onnx": self.engine != "torch",
            "--scene-cuts": self.scene_cuts.enabled,
            "--no-cache": not self.cache_encoder,
            "--compile": self.speed.compile,
            "--baseline-engine": levers,
        }
        if any(offline_only.values()):
            raise ConfigError(
                f"the online mode runs the PyTorch network one frame at a time, without "
                f"{', '.join(name for name, given in offline_only.items() if given)} (they "
                "are the offline engine's: ONNX exports have no temporal cache, there is no "
                "window chain)"
            )
