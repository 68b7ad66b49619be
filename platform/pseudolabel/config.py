"""Configuration of `vda pseudolabel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vda.model.precision import Precision

from ..core.tracking import MlflowConfig
from ..infer.config import ActorConfig
from ..storage import S3Settings
from ..video.suffixes import IMAGE_SUFFIXES


@dataclass
class PseudoLabelConfig:
    input: str = ""  # prefix of images (local or s3://), or a .txt list of URIs
    output: str = ""  # the data set to write (clip shards + manifest.json)
    teacher: str = ""  # a released model by name, or a checkpoint file (local or s3://)
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    input_size: int = 518
    precision: Precision = "auto"  # vda.model.precision: fp16 on CUDA, fp32 off CUDA
    images_per_shard: int = 256  # one Parquet file and one unit of work (and of resume)
    frame_format: Literal["png", "jpeg"] = "png"  # png: the pixels the teacher saw, exactly
    dataset: str = "pseudo"
    # a Ray Data actor pool (one actor by default: two 1-CPU actors starve Ray Data's read
    # task on a 2-CPU machine); "auto" lets Ray Data scale it up to max_actors (0: unbounded)
    actors: ActorConfig = field(default_factory=lambda: ActorConfig(num_actors=1))
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)

    def __post_init__(self) -> None:
        missing = [name for name in ("input", "output", "teacher") if not getattr(self, name)]
        if missing:
            raise ValueError(f"vda pseudolabel needs {', '.join(missing)}")
        if self.images_per_shard < 1:
            raise ValueError("images_per_shard must be at least 1")
