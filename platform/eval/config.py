"""The evaluation job's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from vda.model.config import ModelConfig
from vda.model.inference import InferenceConfig
from vda.model.strategies import STRATEGIES

from ..core.tracking import MlflowConfig
from ..storage import S3Settings


@dataclass
class EvalConfig:
    name: str = "vda-eval"  # report folder and MLflow run name
    dataset: str = "data/synthetic"  # a prepared data set (local or s3://)
    checkpoint: str | None = (
        None  # a model to run: vda train checkpoint (file or folder), VDA, DAv2
    )
    outputs: str | None = None  # or: a finished `vda infer` output prefix to score
    outputs_metric: bool = False  # the outputs hold metric depth rather than relative disparity
    model: ModelConfig = field(default_factory=lambda: ModelConfig(size="tiny"))  # if not in file
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # how the checkpoint runs over each sequence; per_frame (T = 1) shows the temporal gain
    strategies: list[str] = field(default_factory=lambda: ["keyframes", "per_frame"])
    sequences: list[str] = field(default_factory=list)  # a subset; empty: every sequence
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
