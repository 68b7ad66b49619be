"""Run (or resume) a sweep: Ray Tune over training trials, ASHA, an MLflow parent run.

Order of work: validate the space (no Ray needed), create the MLflow parent
run (the experiment must exist before trials race to create it on SQLite),
then fit or restore the Tuner stored at `storage_path/name`, and finally
write the results table and the best trial's config and checkpoint URI next
to it and onto the parent run.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.config import flatten, to_dict
from ..core.session import start_ray
from ..core.tracking import MlflowConfig, TrackedRun, find_run, log_metrics, tracked_run
from ..storage import S3Settings, join, resolve, write_bytes
from ..storage.objects import is_s3
from ..train.config import TrainConfig
from .config import STEP_METRICS, SweepConfig
from .results import (
    EARLY_STOPPED,
    ERRORED,
    FINISHED,
    MLFLOW_STATUS,
    TrialRow,
    sort_rows,
    to_csv,
    trial_status,
)
from .space import Dimension, trial_config, validate_space
from .trial import SWEEP_TAG, TrialContext, run_trial, trial_name

RESULTS_FILE = "results.csv"
BEST_CONFIG_FILE = "best_config.yaml"
BEST_TRIAL_FILE = "best_trial.json"


@dataclass
class SweepResult:
    name: str
    rows: list[TrialRow]  # best first
    best: TrialRow | None
    output: str  # where results.csv, best_config.yaml and best_trial.json are
    mlflow_run_id: str
    tracking_uri: str
    resumed: bool


def data_cpus(train: TrainConfig) -> float:
    """CPUs a trial's Ray Data pipeline needs to make progress: one read and one decode task."""
    clip = train.data.clip
    return clip.read_cpus + clip.decode_cpus


def trial_cpus(sweep: SweepConfig, train: TrainConfig) -> float:
    """CPUs one running trial holds: its Tune driver, its data pipeline and its workers."""
    workers = train.num_workers * train.cpus_per_worker
    return sweep.trial_driver_cpus + data_cpus(train) + workers


def _reaper(context: TrialContext, settings: S3Settings):
    """A Tune callback that frees each trial's worker reservation as the trial ends."""
    from .trial import WorkerGroupReaper

    return WorkerGroupReaper(context, settings)


def trial_resources(sweep: SweepConfig, train: TrainConfig):
    """The trial's placement group: its driver, and the CPUs its Ray Data pipeline may use.

    Ray Data launched inside a trial is held to the trial's placement group
    (it sizes itself from the bundles), so the read and decode tasks need a
    bundle of their own there; the training workers get a group of their own
    from Ray Train.
    """
    from ray import tune

    return tune.PlacementGroupFactory([{"CPU": sweep.trial_driver_cpus}, {"CPU": data_cpus(train)}])


def concurrent_trials(sweep: SweepConfig, train: TrainConfig, resources: dict[str, float]) -> int:
    """As many trials as the cluster can run at once, so no trial driver idles holding a slot."""
    if sweep.max_concurrent_trials:
        return sweep.max_concurrent_trials
    count = math.floor(resources.get("CPU", 0) / trial_cpus(sweep, train) + 1e-9)
    if train.use_gpu:
        count = min(count, math.floor(resources.get("GPU", 0) / train.num_workers + 1e-9))
    return max(1, count)


def _scheduler(sweep: SweepConfig, train: TrainConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if sweep.scheduler.kind == "fifo":
        return FIFOScheduler()
    # time in epochs, not reports: mid-epoch checkpoint reports must not count as rungs
    return ASHAScheduler(
        time_attr="epoch",
        max_t=sweep.scheduler.max_t or train.epochs,
        grace_period=sweep.scheduler.grace_period,
        reduction_factor=sweep.scheduler.reduction_factor,
        # a trial that reaches max_t ends by itself; stopping it at its last report would
        # interrupt its final model upload and mark its run failed
        stop_last_trials=False,
    )


def _search_alg(sweep: SweepConfig, concurrency: int):
    """The search algorithm, holding back trials beyond `concurrency` (Tune does not, for ours)."""
    if sweep.search.algorithm == "optuna":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        return ConcurrencyLimiter(OptunaSearch(seed=sweep.search.seed), concurrency)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=sweep.search.seed, max_concurrent=concurrency)


def _parent_run(sweep: SweepConfig, train: TrainConfig, dimensions: list[Dimension]):
    parent = open_parent_run(train.mlflow, sweep.name)
    params = {
        "metric": sweep.metric,
        "mode": sweep.mode,
        "num_samples": sweep.num_samples,
        **{f"scheduler.{k}": v for k, v in to_dict(sweep.scheduler).items()},
        "search.algorithm": sweep.search.algorithm,
        **{f"space.{d.key}": d.describe() for d in dimensions},
        **{f"base.{k}": v for k, v in flatten(sweep.train).items()},
    }
    parent.log_params(params)
    return parent


def open_parent_run(config: MlflowConfig, name: str) -> TrackedRun:
    """The sweep's parent run: found again by its tag on a rerun (and reopened), else new."""
    return tracked_run(config, name, resume_tag=SWEEP_TAG)


def new_tuner(
    sweep: SweepConfig,
    trainable,
    dimensions,
    storage_path: str,
    filesystem,
    concurrency: int,
    search_alg,
    scheduler=None,
    callbacks: list | None = None,
):
    """A first run's Tuner for a training or an eval sweep: the sweep's metric, samples and
    space, stored under `storage_path/name` so that a rerun restores it (`restored_tuner`)."""
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space={d.key: d.to_tune() for d in dimensions},
        tune_config=tune.TuneConfig(
            metric=sweep.metric,
            mode=sweep.mode,
            num_samples=sweep.num_samples,
            scheduler=scheduler,
            search_alg=search_alg,
            max_concurrent_trials=concurrency,
        ),
        run_config=tune.RunConfig(
            name=sweep.name,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            callbacks=callbacks,
        ),
    )


def restored_tuner(experiment_path: str, trainable, filesystem):
    """The stored sweep's Tuner, rerunning its unfinished and errored trials; None if new."""
    from ray import tune

    if not tune.Tuner.can_restore(experiment_path, storage_filesystem=filesystem):
        return None
    return tune.Tuner.restore(
        experiment_path,
        trainable,
        resume_unfinished=True,
        resume_errored=True,
        storage_filesystem=filesystem,
    )


def publish(root: str, files: dict[str, str], settings: S3Settings, client, run_id: str) -> None:
    """Write the sweep's files next to its trials and onto its parent run."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            write_bytes(join(root, name), text.encode(), settings)
            Path(folder, name).write_text(text)
            client.log_artifact(run_id, str(Path(folder, name)))


def pin_paths(train: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    """The base config with local paths absolute and the tracking URI fixed.

    Trials run in Tune actors whose working directory is not the driver's: a
    relative data path, or the default `./mlruns.db`, would point elsewhere.
    """
    import copy

    data = copy.deepcopy(train)
    data.setdefault("mlflow", {})["tracking_uri"] = tracking_uri
    section = data.setdefault("data", {})
    for holder, key in ((section, "train"), (section, "val"), (data, "init")):
        value = holder.get(key)
        if isinstance(value, str) and value and not is_s3(value):
            holder[key] = resolve(value)[1]
    if "train" not in section:  # the default data set lives under the driver's directory
        section["train"] = resolve(TrainConfig().data.train)[1]
    return data


def _storage(uri: str, settings: S3Settings) -> tuple[Any, str]:
    """(filesystem or None, path) as Tune and Train take them: local paths absolute."""
    if is_s3(uri):
        return resolve(uri, settings)
    path = Path(uri).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return None, str(path)


def run_sweep(sweep: SweepConfig, progress=print) -> SweepResult:
    """Run the sweep to the end (resuming it if it exists) and write its results."""
    import ray
    from ray import tune

    dimensions = validate_space(sweep)  # bad input fails before Ray or MLflow are touched
    base = trial_config(sweep.train, {})
    if (
        sweep.scheduler.kind == "asha"
        and base.checkpoint_every_steps
        and (sweep.metric not in STEP_METRICS)
    ):
        from ..core.config import ConfigError

        raise ConfigError(
            f"metric {sweep.metric!r} is reported only at epoch ends, but mid-epoch checkpoint "
            f"reports (checkpoint_every_steps) carry only {STEP_METRICS}"
        )
    start_ray()
    with _parent_run(sweep, base, dimensions) as parent:  # FAILED if anything below raises
        client, tracking_uri, parent_id = parent.client, parent.tracking_uri, parent.run_id
        experiment_id = parent.experiment_id
        filesystem, storage_path = _storage(sweep.storage_path, base.s3)
        sweep_root = join(sweep.storage_path if filesystem else storage_path, sweep.name)
        context = TrialContext(
            sweep_name=sweep.name,
            train=pin_paths(sweep.train, tracking_uri),
            train_storage=join(sweep_root, "train"),
            parent_run_id=parent_id,
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, context=context), trial_resources(sweep, base)
        )
        tuner = restored_tuner(f"{storage_path.rstrip('/')}/{sweep.name}", trainable, filesystem)
        resumed = tuner is not None
        if resumed:
            progress(f"resuming sweep {sweep.name} from {sweep_root} (its original search space)")
        else:
            resources = ray.cluster_resources()
            concurrency = concurrent_trials(sweep, base, resources)
            if trial_cpus(sweep, base) > resources.get("CPU", 0):
                progress(
                    f"warning: one trial needs {trial_cpus(sweep, base):g} CPUs (driver, data, "
                    f"workers) but the cluster has {resources.get('CPU', 0):g} now; trials wait "
                    "until it grows (lower cpus_per_worker, read_cpus or decode_cpus to fit)"
                )
            progress(f"sweep {sweep.name}: up to {concurrency} trial(s) at once")
            tuner = new_tuner(
                sweep,
                trainable,
                dimensions,
                storage_path,
                filesystem,
                concurrency,
                search_alg=_search_alg(sweep, concurrency),
                scheduler=_scheduler(sweep, base),
                callbacks=[_reaper(context, base.s3)],
            )
        grid = tuner.fit()
        rows = sort_rows([_row(sweep, result, base.s3) for result in grid], sweep.mode)
        _close_children(client, experiment_id, sweep, rows)
        best = next((r for r in rows if r.value is not None and math.isfinite(r.value)), None)
        _write_outputs(sweep, context, rows, best, base.s3, client, parent_id)
        return close_sweep(sweep, rows, best, sweep_root, client, parent_id, tracking_uri, resumed)


def close_sweep(
    sweep: SweepConfig,
    rows: list[TrialRow],
    best: TrialRow | None,
    output: str,
    client,
    parent_id: str,
    tracking_uri: str,
    resumed: bool,
) -> SweepResult:
    """Trial counts and the best value onto the parent run, which is closed; the result."""
    counts = {s: sum(r.status == s for r in rows) for s in (FINISHED, EARLY_STOPPED, ERRORED)}
    summary = {f"trials_{status}": count for status, count in counts.items()}
    if best is not None:
        summary[f"best_{sweep.metric}"] = best.value
    log_metrics(client, parent_id, summary, step=0)  # the caller's `with` closes the run
    return SweepResult(sweep.name, rows, best, output, parent_id, tracking_uri, resumed)


def _row(sweep: SweepConfig, result, settings: S3Settings) -> TrialRow:
    metrics = dict(result.metrics or {})
    sampled = {k: v for k, v in (result.config or {}).items() if k in sweep.space}
    trial_id = str(metrics.get("trial_id") or Path(result.path).name)
    planned = trial_config(sweep.train, sampled).epochs
    epochs = int(metrics.get("epoch", 0))
    checkpoint = metrics.get("checkpoint_path")
    if checkpoint and is_s3(sweep.storage_path):
        checkpoint = f"s3://{checkpoint}"
    value = metrics.get(sweep.metric)
    return TrialRow(
        trial_id=trial_id,
        name=trial_name(sweep.name, trial_id),
        status=trial_status(epochs, planned, result.error is not None),
        sampled=sampled,
        epochs=epochs,
        value=float(value) if value is not None else None,
        metrics={k: float(metrics[k]) for k in _numeric(metrics)},
        checkpoint=checkpoint,
        error=str(result.error).splitlines()[0] if result.error is not None else None,
    )


def _numeric(metrics: dict[str, Any]) -> list[str]:
    return [
        k
        for k, v in metrics.items()
        if k.startswith(("val_", "train_")) and isinstance(v, (int, float))
    ]


def _close_children(client, experiment_id: str, sweep: SweepConfig, rows: list[TrialRow]) -> None:
    """Mark each trial's MLflow run with how it ended (a stopped trial's process was killed)."""
    from ..train.driver import RUN_TAG

    for row in rows:
        run = find_run(client, experiment_id, RUN_TAG, row.name)
        if run is None:
            continue
        client.set_tag(run.info.run_id, "vda.trial_status", row.status)
        if run.info.status != MLFLOW_STATUS[row.status]:
            client.set_terminated(run.info.run_id, status=MLFLOW_STATUS[row.status])


def _write_outputs(
    sweep: SweepConfig,
    context: TrialContext,
    rows: list[TrialRow],
    best: TrialRow | None,
    settings: S3Settings,
    client,
    parent_id: str,
) -> None:
    root = context.train_storage.rsplit("/", 1)[0]
    files = {RESULTS_FILE: to_csv(rows, sweep.metric)}
    if best is not None:
        config = to_dict(
            trial_config(
                context.train, best.sampled, name=best.name, storage_path=context.train_storage
            )
        )
        files[BEST_CONFIG_FILE] = yaml.safe_dump(config, sort_keys=False)
        files[BEST_TRIAL_FILE] = json.dumps(
            {
                "trial_id": best.trial_id,
                "name": best.name,
                "metric": sweep.metric,
                "mode": sweep.mode,
                "value": best.value,
                "sampled": best.sampled,
                "checkpoint": best.checkpoint,
            },
            indent=2,
        )
    publish(root, files, settings, client, parent_id)
