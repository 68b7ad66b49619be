"""The evaluation job's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vda.model.config import ModelConfig
from vda.model.inference import InferenceConfig
from vda.model.metrics import TAE_VARIANTS
from vda.model.strategies import STRATEGIES

from ..core.tracking import MlflowConfig
from ..data.benchmarks import BENCHMARKS, normalise_benchmark
from ..storage import S3Settings
from .protocols import PROTOCOLS


@dataclass
class EvalConfig:
    name: str = "vda-eval"  # report folder and MLflow run name
    dataset: str = "data/synthetic"  # a prepared data set (local or s3://)
    checkpoint: str | None = (
        None  # a model to run: a released name, vda train checkpoint (file or folder), VDA, DAv2
    )
    outputs: str | None = None  # or: a finished `vda infer` output prefix to score
    # the outputs hold metric depth; default: their metadata.json says (depth_kind)
    outputs_metric: bool | None = None
    # only for a bare state dict whose size cannot be read from it; the size is
    # otherwise always the checkpoint's own
    model: ModelConfig | None = None
    # a metric-depth checkpoint (scored with and without alignment); default: the
    # file name (`metric_*`, as the official release names them) or the checkpoint
    metric: bool | None = None
    # a Depth Anything V2 checkpoint: the per-frame image model baseline (DPT head,
    # no temporal modules), scored beside the checkpoint
    image_model: str | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # how the checkpoint runs over each sequence; per_frame is the video head at T = 1
    strategies: list[str] = field(default_factory=lambda: ["keyframes", "per_frame"])
    sequences: list[str] = field(default_factory=list)  # a subset; empty: every sequence
    # an official benchmark protocol (frames, crop, depth cap, sequences, TAE):
    # official-110 | official-500 | official-tae; empty: every frame, the manifest's cap
    protocol: str = ""
    benchmark: str = ""  # which benchmark the data set is; default: its manifest
    tae: str = ""  # TAE variant: project | official; default: the protocol's (official) or project
    size_mismatch: Literal["resize", "refuse"] = "resize"  # outputs of another size
    frame_errors: bool = False  # keep per-frame AbsRel in the JSON report (drift plots)
    report: str = "runs/eval"  # the report goes to <report>/<name>/report.{json,csv}
    cpus_per_task: float = 1.0
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.outputs is None):
            raise ValueError("give exactly one of checkpoint (a model to run) or outputs")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(f"strategies {unknown or '[]'}: choose from {', '.join(STRATEGIES)}")
        if self.cpus_per_task <= 0:
            raise ValueError("cpus_per_task must be above 0")
        if self.protocol and self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: choose from {', '.join(PROTOCOLS)}")
        if self.benchmark and normalise_benchmark(self.benchmark) not in BENCHMARKS:
            raise ValueError(f"benchmark {self.benchmark!r}: choose from {', '.join(BENCHMARKS)}")
        if self.tae and self.tae not in TAE_VARIANTS:
            raise ValueError(f"tae {self.tae!r}: choose from {', '.join(TAE_VARIANTS)}")
        if self.image_model is not None and self.checkpoint is None:
            raise ValueError("image_model is a baseline beside a checkpoint, not beside outputs")
