"""Configuration of `vda infer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vda.model.inference import SpeedOptions
from vda.model.precision import Precision

from ..core.tracking import MlflowConfig
from ..storage import S3Settings
from ..video import DecodeOptions, OutputOptions
from ..video.scenes import SceneCutOptions
from ..video.suffixes import VIDEO_SUFFIXES


@dataclass
class ActorConfig:
    """The pool of model actors: sized from the cluster, grown with it (see pool.py)."""

    # "auto": as many as the cluster's GPUs (or CPUs, on a CPU cluster) hold, bounded by
    # min_actors / max_actors and the work left; a number: exactly that many asked for
    num_actors: int | Literal["auto"] = "auto"
    min_actors: int = 1  # fewer ready after start_timeout_s: the job ends (exit status 2)
    max_actors: int = 0  # 0: no bound but the cluster; more than it holds asks the autoscaler
    # an actor not placed and loaded by then is released with one line saying why
    start_timeout_s: float = 600.0
    check_s: float = 5.0  # how often the pool looks for new capacity (a node joined)
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    # split videos' stitches run in threads of the pool's actors, this many per actor at most
    stitches_per_actor: int = 4
    # calls (a unit, or a batch of short videos) sent to an actor ahead of time: the next
    # waits in the actor's queue while the current one runs, so the model does not idle
    # through the round trip to the driver
    units_in_flight: int = 2
    # the units in flight run side by side and take turns on the model (`turns.py`): the
    # next video opens and decodes ahead while the current one runs, and a finished one's
    # files and commit run beside the next one's model. "auto": on GPU actors only; on CPU
    # actors the work around the model takes the cores torch's threads run on, and one at
    # a time is faster (`vda bench infer --many`, docs/infer.md). auto | always | never
    overlap: str = "auto"
    # short videos travel several to a call, up to about this many seconds of work as the
    # job has measured it, at most `batch_max` (`batching.py`); 0: one video a call
    batch_s: float = 5.0
    batch_max: int = 32
    # a unit of work (a video or a segment) whose actor dies this many times is recorded
    # as failed with the reason; the actor is replaced each time and the job goes on
    max_attempts: int = 3
    # a unit (or a stitch) with no progress (a frame decoded or computed, a phase begun)
    # for this long is stalled: its actor is killed and the unit retried, counted as an
    # attempt. Raised by itself to 4x the longest pause any actor of the job has seen end
    # (the first window of a large model on a slow device), so a slow model never trips it.
    stall_timeout_s: float = 300.0
    # the job's share of the cluster's autoscaler request lapses this long after its driver
    # stopped renewing it (a killed driver never holds nodes longer than this)
    autoscaler_ttl_s: float = 60.0
    # torch threads per actor. Ray sets OMP_NUM_THREADS from num_cpus, which is 1
    # for fractional shares; 0 means ceil(cpus_per_actor). On GPU nodes it matters little.
    torch_threads: int = 0

    @property
    def side_by_side(self) -> int:
        """How many units an actor runs at once (`overlap`)."""
        on = self.overlap == "always" or (self.overlap == "auto" and self.gpus_per_actor > 0)
        return self.units_in_flight if on else 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("actors.max_attempts must be at least 1")
        if self.num_actors != "auto" and self.num_actors < 1:
            raise ValueError('actors.num_actors must be "auto" or at least 1')
        if self.min_actors < 1 or (self.max_actors and self.max_actors < self.min_actors):
            raise ValueError("actors: need 1 <= min_actors <= max_actors (0: unbounded)")
        if self.units_in_flight < 1:
            raise ValueError("actors.units_in_flight must be at least 1")
        if self.batch_s < 0 or self.batch_max < 1:
            raise ValueError("actors: need batch_s >= 0 (seconds; 0: off) and batch_max >= 1")
        if self.overlap not in ("auto", "always", "never"):
            raise ValueError(f"actors.overlap must be auto, always or never, not {self.overlap!r}")
        if self.stall_timeout_s <= 0 or self.autoscaler_ttl_s <= 0:
            raise ValueError("actors.stall_timeout_s and autoscaler_ttl_s must be positive (s)")
        if self.cpus_per_actor <= 0 and self.gpus_per_actor <= 0:
            raise ValueError("actors: cpus_per_actor or gpus_per_actor must be positive")


@dataclass
class SplitConfig:
    """Long videos cut into segments of whole windows that run on different actors at once."""

    segment_frames: int = 0  # 0: off (one video per call); else videos longer than this split
    seek: bool = True  # segments seek to their first frame (exact for constant-rate video)

    def __post_init__(self) -> None:
        if self.segment_frames < 0:
            raise ValueError("split.segment_frames must be 0 (off) or a frame count")


@dataclass
class WriterConfig:
    """Output work (compression, H.264, PNGs, uploads) on a thread beside the model."""

    background: bool = True
    queue_frames: int = 32  # depth maps waiting for the writer at most: bounds memory


@dataclass
class ManifestConfig:
    """How often the driver merges finished rows into manifest part files: what a killed
    driver's rerun has to read row by row is at most this much."""

    merge_s: float = 60.0
    merge_rows: int = 1000

    def __post_init__(self) -> None:
        if self.merge_s <= 0 or self.merge_rows < 1:
            raise ValueError("manifest.merge_s and merge_rows must be positive")


@dataclass
class InferFault:
    """Test hooks.

    `exit_after_frames`: the first actor to reach this many frames of a video dies, once.
    `crash_videos`: video ids whose actor dies on every attempt (a poison video);
    `ID#N` kills only segment N of a split video.
    `frame_delay_s`: sleep per decoded frame, so a test can interrupt a job mid-way.
    `fail_start`: every actor raises while starting (a model that cannot load on a node).
    `die_idle_every`: each actor dies idle after this many units, before taking the next.
    `null_model`: a video is committed at once, done with no frames, neither decoded nor
    run (`vda bench infer --null`: the job around the model, everything else real).
    `raise_videos`: video ids whose actor call raises outside any video's own guard (a
    bug in the actor's code: the call fails, the actor lives), on every attempt.
    """

    exit_after_frames: int | None = None
    crash_videos: list[str] = field(default_factory=list)
    frame_delay_s: float = 0.0
    fail_start: bool = False
    die_idle_every: int = 0
    null_model: bool = False
    raise_videos: list[str] = field(default_factory=list)


@dataclass
class InferConfig:
    input: str = ""  # prefix of videos (local or s3://), or a .txt list of URIs
    output: str = ""  # output prefix
    # a released model by name (vits, vitl, metric-vitl, ...: each actor fetches it into its
    # node's Hugging Face cache), or an official VDA / vda checkpoint, local or s3://
    checkpoint: str = "vits"
    suffixes: tuple[str, ...] = VIDEO_SUFFIXES
    # image files under `input` grouped by folder, each folder one video (VFX plates)
    sequences: bool = False
    sequence_fps: float | None = None  # else the folder's sequence.json, else 24
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    input_size: int = 518
    precision: Precision = "auto"  # vda.model.precision: fp16 on CUDA, fp32 off CUDA
    cache_encoder: bool = True
    speed: SpeedOptions = field(default_factory=SpeedOptions)  # the engine's speed levers
    # restart the window chain at scene cuts (videos with it on are never split)
    scene_cuts: SceneCutOptions = field(default_factory=SceneCutOptions)
    decode_prefetch: int = 64  # frames decoded ahead on a background thread
    actors: ActorConfig = field(default_factory=ActorConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    writer: WriterConfig = field(default_factory=WriterConfig)
    manifest: ManifestConfig = field(default_factory=ManifestConfig)
    fail_on_error: bool = False
    retry_failed: bool = False  # a rerun skips videos that failed before unless this is set
    progress_s: float = 30.0  # seconds between status lines
    verbose: bool = False  # a line per video (always on for jobs of 20 videos or fewer)
    # the lease on the output prefix that keeps a second job off it; a crashed job's expires
    lease_s: float = 120.0
    lookup_threads: int = 16  # parallel GETs of rows written since the last manifest merge
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)
    fault: InferFault = field(default_factory=InferFault)

    def __post_init__(self) -> None:
        missing = [name for name in ("input", "output", "checkpoint") if not getattr(self, name)]
        if missing:
            raise ValueError(f"vda infer needs {', '.join(missing)}")
