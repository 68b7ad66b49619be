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

from ray.tune import Callback

from .space import trial_config

SWEEP_TAG = "vda.sweep_name"  # on the sweep's parent run only
TRIAL_SWEEP_TAG = "vda.trial_of_sweep"  # on each trial's run
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
            TRIAL_SWEEP_TAG: context.sweep_name,
            TRIAL_TAG: trial_id,
        },
    )


def remove_worker_group(train_storage: str, name: str, settings) -> bool:
    """Remove the placement group a finished or stopped trial's workers held, if it is left.

    Ray Train V2 removes it when its controller shuts down cleanly; a trial whose
    actor ends first (ASHA's stop, and measured here also at a normal finish) can
    leave it reserved, and a sweep of many trials then fills the cluster with idle
    reservations until no trial can start. Returns whether one was removed.
    """
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    from ..storage import exists, join, read_bytes
    from ..train.placement import PLACEMENT_GROUP_FILE

    path = join(train_storage, name, PLACEMENT_GROUP_FILE)
    if not exists(path, settings):
        return False
    group_id = ray.PlacementGroupID(bytes.fromhex(read_bytes(path, settings).decode()))
    group = PlacementGroup(group_id)
    state = ray.util.placement_group_table(group).get("state")
    if state in (None, "REMOVED"):
        return False
    remove_placement_group(group)
    return True


class WorkerGroupReaper(Callback):
    """Tune callback (driver side): frees each trial's worker reservation as the trial ends."""

    def __init__(self, context: TrialContext, settings) -> None:
        self.context = context
        self.settings = settings

    def _reap(self, trial) -> None:
        name = trial_name(self.context.sweep_name, trial.trial_id)
        try:
            if remove_worker_group(self.context.train_storage, name, self.settings):
                print(f"freed the worker placement group {name} left behind")
        except Exception as error:  # clean-up never fails a sweep
            print(f"could not free the worker placement group of {name}: {error}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._reap(trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._reap(trial)
