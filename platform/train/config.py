"""The training job's configuration: typed, with defaults that run on a laptop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vda.model.config import ModelConfig
from vda.model.losses import LossConfig
from vda.model.precision import Precision

from ..core.tracking import MlflowConfig
from ..data.pipeline import ClipConfig
from ..storage import S3Settings
from .sources import SourceConfig


@dataclass
class DataConfig:
    train: str = "data/synthetic"  # a prepared data set (local or s3://)
    val: str | None = None  # default: the training set (or the first source), fixed windows
    clip: ClipConfig = field(default_factory=ClipConfig)
    val_clips: int = 8  # clips per worker per validation
    # several sets mixed by weight (replaces `train`): video clips and pseudo-labelled images
    sources: list[SourceConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"data.sources: names must differ, got {names}")

    def training_sets(self) -> list[SourceConfig]:
        return self.sources or [SourceConfig(name="train", path=self.train)]

    @property
    def validation_set(self) -> str:
        return self.val or self.training_sets()[0].path


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0


@dataclass
class FaultConfig:
    """Test hook: one worker dies once, hard, at a given global step."""

    fail_at_step: int | None = None
    fail_rank: int = 1


class WorkersNotPlacedError(RuntimeError):
    """The cluster could not place the training workers within `start_timeout_s`."""


@dataclass
class TrainConfig:
    name: str = "vda-train"  # the run id: a rerun with the same name resumes
    storage_path: str = "runs"  # local folder or s3:// prefix for checkpoints
    model: ModelConfig = field(default_factory=lambda: ModelConfig(size="tiny"))
    init: str | None = None  # DAv2 / VDA / timm / vda checkpoint (local or s3://)
    trainable: Literal["head", "temporal", "all"] = "head"
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 2
    steps_per_epoch: int = 20  # upper bound; an epoch also ends when any worker runs dry
    num_workers: int = 2
    use_gpu: bool = False
    # GPUs per worker with use_gpu: a fraction puts several workers on one GPU (NCCL may
    # refuse two ranks on one device; `make gpu-check` tries it)
    gpus_per_worker: float = 1.0
    cpus_per_worker: float = 1.0  # below 1 on small machines: Ray Data tasks need CPU too
    placement_strategy: Literal["PACK", "SPREAD"] = "PACK"  # SPREAD: one worker per node
    precision: Precision = "auto"  # vda.model.precision: bf16 on a GPU that has it, fp32 off CUDA
    checkpoint_every_steps: int = 0  # 0: at epoch ends only
    keep_checkpoints: int = 2
    max_failures: int = 0  # worker-group restarts, and also failed worker-group starts
    # how long the workers may wait for the cluster to place them, each time they start:
    # past it the run fails with the reason instead of waiting for ever (an autoscaler needs
    # minutes to add a node; a request no node can meet never succeeds)
    start_timeout_s: float = 600.0
    log_every_steps: int = 1
    log_flush_steps: int = 20  # logged steps per MLflow batch (sent beside training)
    seed: int = 0
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)
    fault: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:  # its sections check their own keys; here what spans two
        if self.data.clip.clip_len > self.model.num_frames:
            raise ValueError(
                f"data.clip.clip_len {self.data.clip.clip_len} exceeds model.num_frames "
                f"{self.model.num_frames} (the temporal position encoding)"
            )
        for source in self.data.sources:
            if (source.clip_len or 1) > self.model.num_frames:
                raise ValueError(
                    f"data.sources: {source.name!r} clip_len {source.clip_len} exceeds "
                    f"model.num_frames {self.model.num_frames}"
                )
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError("epochs and steps_per_epoch must be at least 1")
        if self.num_workers < 1:
            raise ValueError("num_workers must be at least 1")
        if self.start_timeout_s <= 0:
            raise ValueError(f"start_timeout_s must be positive, got {self.start_timeout_s}")
        if not self.model.freeze_encoder and self.trainable != "all":
            raise ValueError(
                f"model.freeze_encoder=false contradicts trainable={self.trainable} (which "
                "freezes the encoder): set trainable=all to train the encoder, or drop "
                "model.freeze_encoder"
            )
