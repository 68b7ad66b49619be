"""Configuration of `vda infer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vda.model.inference import SpeedOptions

from ..core.tracking import MlflowConfig
from ..storage import S3Settings
from ..video import DecodeOptions, OutputOptions
from ..video.scenes import SceneCutOptions

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass
class ActorConfig:
    num_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    # a unit of work (a video or a segment) whose actor dies this many times is recorded
    # as failed with the reason; the actor is replaced each time and the job goes on
    max_attempts: int = 3
    # torch threads per actor. Ray sets OMP_NUM_THREADS from num_cpus, which is 1
    # for fractional shares; 0 means ceil(cpus_per_actor). On GPU nodes it matters little.
    torch_threads: int = 0


@dataclass
class SplitConfig:
    """Long videos cut into segments of whole windows that run on different actors at once."""

    segment_frames: int = 0  # 0: off (one video per call); else videos longer than this split
    seek: bool = True  # segments seek to their first frame (exact for constant-rate video)
    stitch_cpus: float = 1.0  # the ordered pass that aligns, blends and writes a split video


@dataclass
class WriterConfig:
    """Output work (compression, H.264, PNGs, uploads) on a thread beside the model."""

    background: bool = True
    queue_frames: int = 32  # depth maps waiting for the writer at most: bounds memory


@dataclass
class InferFault:
    """Test hooks.

    `exit_after_frames`: the first actor to reach this many frames of a video dies, once.
    `crash_videos`: video ids whose actor dies on every attempt (a poison video);
    `ID#N` kills only segment N of a split video.
    `frame_delay_s`: sleep per decoded frame, so a test can interrupt a job mid-way.
    """

    exit_after_frames: int | None = None
    crash_videos: list[str] = field(default_factory=list)
    frame_delay_s: float = 0.0


@dataclass
class InferConfig:
    input: str = ""  # prefix of videos (local or s3://), or a .txt list of URIs
    output: str = ""  # output prefix
    checkpoint: str = ""  # official VDA or vda checkpoint (local or s3://)
    suffixes: tuple[str, ...] = VIDEO_SUFFIXES
    # image files under `input` grouped by folder, each folder one video (VFX plates)
    sequences: bool = False
    sequence_fps: float | None = None  # else the folder's sequence.json, else 24
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    input_size: int = 518
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    cache_encoder: bool = True
    speed: SpeedOptions = field(default_factory=SpeedOptions)  # the engine's speed levers
    # restart the window chain at scene cuts (videos with it on are never split)
    scene_cuts: SceneCutOptions = field(default_factory=SceneCutOptions)
    decode_prefetch: int = 64  # frames decoded ahead on a background thread
    actors: ActorConfig = field(default_factory=ActorConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    writer: WriterConfig = field(default_factory=WriterConfig)
    fail_on_error: bool = False
    retry_failed: bool = False  # a rerun skips videos that failed before unless this is set
    progress_s: float = 30.0  # seconds between progress lines (and one per finished video)
    lookup_threads: int = 16  # parallel GETs deciding which videos are done
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)
    fault: InferFault = field(default_factory=InferFault)

    def __post_init__(self) -> None:
        missing = [name for name in ("input", "output", "checkpoint") if not getattr(self, name)]
        if missing:
            raise ValueError(f"vda infer needs {', '.join(missing)}")
        if self.actors.max_attempts < 1:
            raise ValueError("actors.max_attempts must be at least 1")
        if self.split.segment_frames < 0:
            raise ValueError("split.segment_frames must be 0 (off) or a frame count")
