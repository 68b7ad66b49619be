"""Configuration of `vda infer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..core.tracking import MlflowConfig
from ..storage import S3Settings
from ..video import DecodeOptions, OutputOptions

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass
class ActorConfig:
    num_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    max_restarts: int = 2  # a dead actor is replaced and its video redone from the start
    # torch threads per actor. Ray sets OMP_NUM_THREADS from num_cpus, which is 1
    # for fractional shares; 0 means ceil(cpus_per_actor). On GPU nodes it matters little.
    torch_threads: int = 0


@dataclass
class InferFault:
    """Test hook: the first actor to reach this many frames of a video dies, once."""

    exit_after_frames: int | None = None


@dataclass
class InferConfig:
    input: str = ""  # prefix of videos (local or s3://), or a .txt list of URIs
    output: str = ""  # output prefix
    checkpoint: str = ""  # official VDA or vda checkpoint (local or s3://)
    suffixes: tuple[str, ...] = VIDEO_SUFFIXES
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    input_size: int = 518
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    cache_encoder: bool = True
    decode_prefetch: int = 64  # frames decoded ahead on a background thread
    actors: ActorConfig = field(default_factory=ActorConfig)
    fail_on_error: bool = False
    retry_failed: bool = False  # a rerun skips videos that failed before unless this is set
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)
    fault: InferFault = field(default_factory=InferFault)

    def __post_init__(self) -> None:
        missing = [name for name in ("input", "output", "checkpoint") if not getattr(self, name)]
        if missing:
            raise ValueError(f"vda infer needs {', '.join(missing)}")
