"""Eval-only sweeps: one checkpoint scored under each sampled inference setting.

The engine's window geometry (`inference.window.length` up to the model's
32 frames, `interp`, `key_offset`) and the input size change what a trained
model delivers without any training. Each trial is one `vda eval` of the
fixed checkpoint with the sampled settings, run in the trial's own process
(a Tune trial is already a Ray actor; its sequences are scored one after
another), reported once to Tune and written as an MLflow child run of the
sweep's parent run, with its report files under `<storage_path>/<name>/trials/`.
The results table, best config and best trial go where a training sweep puts
them.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.config import ConfigError, build, flatten, to_dict
from ..core.session import start_ray
from ..eval.config import EvalConfig
from ..storage import join, resolve
from ..storage.objects import is_s3
from .config import EVAL_METRICS, SweepConfig
from .results import ERRORED, FINISHED, TrialRow, sort_rows, to_csv
from .space import MAX_CHECKED_COMBINATIONS, Dimension, parse_space, set_dotted
from .sweep import (
    BEST_CONFIG_FILE,
    BEST_TRIAL_FILE,
    RESULTS_FILE,
    SweepResult,
    _storage,
    close_sweep,
    new_tuner,
    open_parent_run,
    publish,
    restored_tuner,
)
from .trial import PARENT_TAG, TRIAL_SWEEP_TAG, TRIAL_TAG, trial_name

OWNED_KEYS = ("name", "report", "checkpoint", "outputs")  # fixed for every trial


@dataclass(frozen=True)
class EvalTrialContext:
    sweep_name: str
    eval: dict[str, Any]  # the base eval config, local paths absolute
    report_root: str  # where each trial's report goes
    parent_run_id: str


def eval_trial_config(base: dict[str, Any], sampled: dict[str, Any], **fixed: Any) -> EvalConfig:
    data = copy.deepcopy(base)
    for key, value in {**sampled, **fixed}.items():
        set_dotted(data, key, value)
    return build(EvalConfig, data)


def _check(base: dict[str, Any], sampled: dict[str, Any], frames: int, where: str) -> None:
    try:
        config = eval_trial_config(base, sampled)
    except (ConfigError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None
    length = config.inference.window.length
    if length > frames:
        raise ConfigError(
            f"{where}: inference.window.length {length} exceeds the checkpoint's "
            f"{frames}-frame temporal window"
        )


def validate_eval_space(sweep: SweepConfig) -> list[Dimension]:
    """Parse the space and check every value (and the discrete combinations) builds a valid
    eval config whose window fits the checkpoint; ConfigError names the key."""
    from ..eval.plan import load_model

    try:
        base = build(EvalConfig, sweep.eval)
    except (ConfigError, ValueError) as error:
        raise ConfigError(f"base eval config: {error}") from None
    if base.checkpoint is None:
        raise ConfigError("an eval-only sweep scores a checkpoint: set eval.checkpoint")
    dimensions = parse_space(sweep.space)
    for dimension in dimensions:
        if dimension.key.split(".")[0] in OWNED_KEYS:
            raise ConfigError(f"search space {dimension.key}: fixed for every trial")
    frames = load_model(base).config.num_frames
    # the window's keys constrain each other: probe each value with the other keys at
    # their first value, not at the base's (a 16-frame model never sees the default 32)
    context = {d.key: d.probe_values()[0] for d in dimensions}
    for dimension in dimensions:
        for value in dimension.probe_values():
            where = f"search space {dimension.key}={value!r}"
            _check(sweep.eval, {**context, dimension.key: value}, frames, where)
    probes = [[(d.key, v) for v in d.probe_values()] for d in dimensions]
    if len(probes) > 1 and math.prod(len(p) for p in probes) <= MAX_CHECKED_COMBINATIONS:
        for combination in itertools.product(*probes):
            names = ", ".join(f"{k}={v!r}" for k, v in combination)
            _check(sweep.eval, dict(combination), frames, f"search space combination {names}")
    return dimensions


def run_eval_trial(sampled: dict[str, Any], context: EvalTrialContext) -> None:
    """Tune entry point: one evaluation with the sampled settings, reported once."""
    from ray import tune

    from ..eval.job import score_in_process
    from ..eval.plan import plan_eval
    from ..eval.report import write_report

    trial_id = tune.get_context().get_trial_id()
    name = trial_name(context.sweep_name, trial_id)
    config = eval_trial_config(context.eval, sampled, name=name, report=context.report_root)
    report = score_in_process(plan_eval(config))
    write_report(
        config,
        report,
        tags={
            PARENT_TAG: context.parent_run_id,
            TRIAL_SWEEP_TAG: context.sweep_name,
            TRIAL_TAG: trial_id,
        },
    )
    if not report.modes:
        raise RuntimeError(f"no sequence could be scored: {report.failed}")
    overall = next(iter(report.modes.values()))["overall"]  # the first strategy's numbers
    metrics = {k: float(overall[k]) for k in EVAL_METRICS if k in overall}
    tune.report({**metrics, "epoch": 1, "trial_id": trial_id, "failed": len(report.failed)})


def pin_eval_paths(data: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    """Local paths absolute and the tracking URI fixed: trials run in other directories."""
    pinned = copy.deepcopy(data)
    pinned.setdefault("mlflow", {})["tracking_uri"] = tracking_uri
    for key in ("dataset", "checkpoint", "image_model"):
        value = pinned.get(key)
        if key == "dataset" and value is None:
            value = EvalConfig.__dataclass_fields__["dataset"].default
        if isinstance(value, str) and value and not is_s3(value):
            pinned[key] = resolve(value)[1]
    return pinned


def run_eval_sweep(sweep: SweepConfig, progress=print) -> SweepResult:
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    dimensions = validate_eval_space(sweep)  # bad input fails before any trial
    base = build(EvalConfig, sweep.eval)
    start_ray()
    with open_parent_run(base.mlflow, sweep.name) as parent:  # FAILED if anything below raises
        client, tracking_uri, parent_id = parent.client, parent.tracking_uri, parent.run_id
        parent.log_params(
            {
                "kind": "eval",
                "metric": sweep.metric,
                "mode": sweep.mode,
                **{f"space.{d.key}": d.describe() for d in dimensions},
                **{f"base.{k}": v for k, v in flatten(sweep.eval).items()},
            },
        )
        filesystem, storage_path = _storage(sweep.storage_path, base.s3)
        sweep_root = join(sweep.storage_path if filesystem else storage_path, sweep.name)
        context = EvalTrialContext(
            sweep_name=sweep.name,
            eval=pin_eval_paths(sweep.eval, tracking_uri),
            report_root=join(sweep_root, "trials"),
            parent_run_id=parent_id,
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_eval_trial, context=context), {"cpu": base.cpus_per_task}
        )
        tuner = restored_tuner(f"{storage_path.rstrip('/')}/{sweep.name}", trainable, filesystem)
        resumed = tuner is not None
        if resumed:
            progress(f"resuming eval sweep {sweep.name} from {sweep_root}")
        else:
            concurrency = sweep.max_concurrent_trials or max(
                1, math.floor(ray.cluster_resources().get("CPU", 1) / base.cpus_per_task)
            )
            search = BasicVariantGenerator(
                random_state=sweep.search.seed, max_concurrent=concurrency
            )
            tuner = new_tuner(
                sweep, trainable, dimensions, storage_path, filesystem, concurrency, search
            )
        grid = tuner.fit()
        rows = sort_rows([_row(sweep, result) for result in grid], sweep.mode)
        best = next((r for r in rows if r.value is not None and math.isfinite(r.value)), None)
        files = {RESULTS_FILE: to_csv(rows, sweep.metric)}
        if best is not None:
            best_config = eval_trial_config(context.eval, best.sampled, name=best.name)
            files[BEST_CONFIG_FILE] = yaml.safe_dump(to_dict(best_config), sort_keys=False)
            files[BEST_TRIAL_FILE] = json.dumps(
                {
                    "trial_id": best.trial_id,
                    "name": best.name,
                    "metric": sweep.metric,
                    "mode": sweep.mode,
                    "value": best.value,
                    "sampled": best.sampled,
                },
                indent=2,
            )
        publish(sweep_root, files, base.s3, client, parent_id)
        return close_sweep(sweep, rows, best, sweep_root, client, parent_id, tracking_uri, resumed)


def _row(sweep: SweepConfig, result) -> TrialRow:
    metrics = dict(result.metrics or {})
    sampled = {k: v for k, v in (result.config or {}).items() if k in sweep.space}
    trial_id = str(metrics.get("trial_id") or Path(result.path).name)
    value = metrics.get(sweep.metric)
    return TrialRow(
        trial_id=trial_id,
        name=trial_name(sweep.name, trial_id),
        status=ERRORED if result.error is not None else FINISHED,
        sampled=sampled,
        epochs=int(metrics.get("epoch", 0)),
        value=float(value) if value is not None else None,
        metrics={k: float(metrics[k]) for k in EVAL_METRICS if k in metrics},
        error=str(result.error).splitlines()[0] if result.error is not None else None,
    )
