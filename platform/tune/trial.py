"""One sweep trial: a Tune function trainable that runs one distributed training job.

Ray Train V2 cannot be handed to a `Tuner` directly; instead each trial is a
small Tune actor that builds its training config from the sampled values and
fits a `TorchTrainer`, whose `TuneReportCallback` forwards every epoch's report
to Tune (and so to ASHA). The trial's run name comes from its Tune trial id, so
a restored sweep finds each trial's checkpoints and MLflow child run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .space import trial_config

SWEEP_TAG = "vda.sweep_name"
TRIAL_TAG = "vda.trial_id"
PARENT_TAG = "mlflow.parentRunId"  # how the MLflow UI nests child runs


@dataclass(frozen=True)
class TrialContext:
    sweep_name: str
    train: dict[str, Any]  # the base training config
    train_storage: str  # where the trials' checkpoints go
    parent_run_id: str


def trial_name(sweep_name: str, trial_id: str) -> str:
    return f"{sweep_name}-{trial_id}"


def run_trial(sampled: dict[str, Any], context: TrialContext) -> None:
    """Tune entry point: train with the sampled values; metrics flow to Tune per epoch."""
    import ray.data
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from ..train.driver import train

    # Ray Data 2.60's V2 parquet reader never starts inside a placement group (its
    # file-listing task stays pending, measured with a 1.8-CPU bundle); the V1 reader
    # runs. Only this trial's process is affected.
    ray.data.DataContext.get_current().use_datasource_v2 = False
    trial_id = tune.get_context().get_trial_id()
    name = trial_name(context.sweep_name, trial_id)
    config = trial_config(context.train, sampled, name=name, storage_path=context.train_storage)
    train(
        config,
        callbacks=[TuneReportCallback()],
        mlflow_tags={
            PARENT_TAG: context.parent_run_id,
            SWEEP_TAG: context.sweep_name,
            TRIAL_TAG: trial_id,
        },
    )
