"""Launch distributed training: Ray Train V2 TorchTrainer + MLflow run, from a TrainConfig.

The driver owns what must happen once: the MLflow experiment and run
(created before workers start; a rerun with the same name resumes logging
into the same run), the Ray Datasets, and the final model upload. Ray Train
handles DDP (gloo on CPU, NCCL on GPU), checkpoint storage
(`RunConfig(storage_path, name)`; rerunning with the same pair resumes from
the latest checkpoint) and worker restarts (`FailureConfig(max_failures)`).

Every start of the worker group waits at most `start_timeout_s` for the cluster
to place it (Ray Train's own default retries every 60 s for ever), and a start
that times out counts against `max_failures` like a worker that dies.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..core.config import flatten, to_dict
from ..core.session import start_ray
from ..core.tracking import tracked_run
from ..data.pipeline import build_clip_dataset, read_manifest
from ..storage import resolve
from .checkpoints import read_checkpoint_state
from .config import TrainConfig, WorkersNotPlacedError
from .loop import train_loop_per_worker
from .sources import dataset_key

RUN_TAG = "vda.run_name"
# Ray Train V2 reads it in the driver and hands it to its controller and workers
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


@contextlib.contextmanager
def _start_deadline(config: TrainConfig) -> Iterator[None]:
    """Ray Train's worker-group start timeout set to the config's for the length of a fit,
    and its timeout error said in one line with what was asked for."""
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
    from ray.train.v2.api.exceptions import ControllerError

    saved = os.environ.get(START_TIMEOUT_ENV)
    os.environ[START_TIMEOUT_ENV] = str(config.start_timeout_s)
    try:
        yield
    except ControllerError as error:
        if not isinstance(error.controller_failure, WorkerGroupStartupTimeoutError):
            raise
        resources = {"CPU": config.cpus_per_worker}
        if config.use_gpu:
            resources["GPU"] = config.gpus_per_worker
        raise WorkersNotPlacedError(
            f"the cluster could not place {config.num_workers} training workers of "
            f"{resources} ({config.placement_strategy}) within start_timeout_s="
            f"{config.start_timeout_s:g} s, {config.max_failures + 1} time(s)"
        ) from None
    finally:
        if saved is None:
            os.environ.pop(START_TIMEOUT_ENV, None)
        else:
            os.environ[START_TIMEOUT_ENV] = saved


@dataclass
class TrainResult:
    name: str
    mlflow_run_id: str
    tracking_uri: str
    checkpoint_path: str | None  # latest
    best_checkpoint_path: str | None
    metrics: dict[str, Any]


def _max_depth(manifest: dict[str, Any]) -> float:
    from vda.model.metrics import depth_cap

    return depth_cap(manifest.get("dataset", "synthetic"), manifest.get("max_depth"))


def _log_final_model(config: TrainConfig, tracking_uri: str, run_id: str, checkpoint) -> None:
    """The trained model as an MLflow PyTorch model (weights restored from the checkpoint)."""
    import mlflow
    import mlflow.pytorch

    from vda.model import VideoDepthAnything

    state = read_checkpoint_state(checkpoint)
    model = VideoDepthAnything(config.model)
    model.load_state_dict(state["model"])
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        # pickle rather than MLflow 3's default pt2 (torch.export needs an example input
        # and traces one shape); loading it needs the vda package installed.
        mlflow.pytorch.log_model(
            model.eval(),
            name="model",
            serialization_format="pickle",
            pip_requirements=model_requirements(),
        )


def model_requirements() -> list[str]:
    """What loading the logged model needs, pinned to what trained it. Given explicitly:
    MLflow would otherwise infer them by importing the model in a subprocess, about 8 s of
    every training run."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("vda", "torch", "torchvision", "timm", "numpy")]


def train(
    config: TrainConfig,
    datasets: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    mlflow_tags: dict[str, str] | None = None,
) -> TrainResult:
    """Run (or resume) a training job and return where its results are.

    `callbacks` go to Ray Train (a sweep passes Tune's report callback);
    `mlflow_tags` mark the run when it is created (a sweep's parent run id).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    # bad input fails before Ray starts: every set's manifest must be there
    sources = config.data.training_sets()
    for source in sources:
        read_manifest(source.path, config.s3)
    manifest = read_manifest(config.data.validation_set, config.s3)
    start_ray()
    if datasets is None:
        clip = config.data.clip
        datasets = {
            "val": build_clip_dataset(
                config.data.validation_set, clip, train=False, epoch=0, settings=config.s3
            )
        }
        if not config.data.sources:
            datasets["train"] = build_clip_dataset(
                config.data.train, clip, train=True, settings=config.s3
            )
        for index, source in enumerate(config.data.sources):
            own = replace(clip, clip_len=source.clip_len or clip.clip_len)
            datasets[dataset_key(index)] = build_clip_dataset(
                source.path, own, train=True, settings=config.s3
            )
    # a rerun with the same name logs on into the same run; the run ends FAILED if fit raises
    with tracked_run(config.mlflow, config.name, mlflow_tags, resume_tag=RUN_TAG) as run:
        tracking_uri, run_id = run.tracking_uri, run.run_id
        run.log_params(flatten(to_dict(config)))
        run.log_texts({"train_config.yaml": yaml.safe_dump(to_dict(config), sort_keys=False)})
        filesystem, storage_path = resolve(config.storage_path, config.s3)
        if not config.storage_path.startswith("s3://"):
            Path(storage_path).mkdir(parents=True, exist_ok=True)
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={
                "config": to_dict(config),
                "mlflow_run_id": run_id,
                "tracking_uri": tracking_uri,
                "max_depth": _max_depth(manifest),
            },
            scaling_config=ScalingConfig(
                num_workers=config.num_workers,
                use_gpu=config.use_gpu,
                resources_per_worker={"CPU": config.cpus_per_worker}
                | ({"GPU": config.gpus_per_worker} if config.use_gpu else {}),
                placement_strategy=config.placement_strategy,
            ),
            run_config=RunConfig(
                name=config.name,
                storage_path=storage_path,
                storage_filesystem=filesystem,
                failure_config=FailureConfig(
                    max_failures=config.max_failures,
                    controller_failure_limit=config.max_failures,
                ),
                checkpoint_config=CheckpointConfig(
                    num_to_keep=config.keep_checkpoints,
                    checkpoint_score_attribute="val_abs_rel",
                    checkpoint_score_order="min",
                ),
                callbacks=callbacks,
            ),
            datasets=datasets,
        )
        with _start_deadline(config):
            result = trainer.fit()
        # only checkpoints validated with their own weights rank (mid-epoch ones resume runs)
        validated = [pair for pair in result.best_checkpoints or [] if pair[1].get("validated")]
        best = min(validated, key=lambda pair: pair[1]["val_abs_rel"])[0] if validated else None
        final = best or result.checkpoint
        if final is not None:
            _log_final_model(config, tracking_uri, run_id, final)
    return TrainResult(
        name=config.name,
        mlflow_run_id=run_id,
        tracking_uri=tracking_uri,
        checkpoint_path=_uri(config, result.checkpoint),
        best_checkpoint_path=_uri(config, best),
        metrics=dict(result.metrics or {}),
    )


def _uri(config: TrainConfig, checkpoint) -> str | None:
    if checkpoint is None:
        return None
    path = checkpoint.path
    return f"s3://{path}" if config.storage_path.startswith("s3://") else path
