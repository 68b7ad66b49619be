"""The sweep file: a base training config, a search space over its dotted keys, and a scheduler.

    name: tgm-sweep
    base: train_small.yaml           # a training config file (relative to this file)
    train: {epochs: 4}               # overrides on top of the base
    space:
      loss.tgm_weight: {grid: [0.0, 10.0, 30.0]}
      data.clip.clip_len: {choice: [16, 24, 32]}
      optim.lr: {loguniform: [1.0e-5, 1.0e-3]}
    metric: val_abs_rel
    mode: min
    scheduler: {kind: asha, grace_period: 1, reduction_factor: 2}

The base is folded into `train` when the file is loaded, so a sweep travels
as one self-contained mapping (`vda submit` sends it inline to a cluster).

An eval-only sweep has `eval` (a `vda eval` config with a fixed checkpoint)
instead of `train`; its space is over inference keys and each trial is one
evaluation, scored by abs_rel / delta1 / rmse / tae:

    name: window-sweep
    eval: {checkpoint: model.pt, dataset: data/heldout, strategies: [keyframes]}
    space:
      inference.window.length: {grid: [16, 24, 32]}
      inference.window.interp: {grid: [4, 8]}
      inference.input_size: {grid: [392, 518]}
    metric: tae
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.config import ConfigError, apply_overrides, build, read_config_data, read_yaml

# What each epoch's report carries (HeadTrainer.run); a metric outside this set
# is a typo that would otherwise fail only after the first trial has trained.
EPOCH_METRICS = (
    "val_abs_rel",
    "val_delta1",
    "val_rmse",
    "val_tae",
    "train_loss",
    "train_ssi",
    "train_tgm",
    "data_wait_frac",
)
# Mid-epoch checkpoint reports (checkpoint_every_steps > 0) carry only these.
STEP_METRICS = ("val_abs_rel", "train_loss")
# What an eval-only trial reports (the overall numbers of `vda eval`).
EVAL_METRICS = ("abs_rel", "delta1", "rmse", "tae")
# Keys each trial sets itself: its run name and where its checkpoints go.
TRIAL_OWNED_KEYS = ("name", "storage_path")


@dataclass
class SchedulerConfig:
    kind: Literal["asha", "fifo"] = "asha"
    grace_period: int = 1  # epochs before ASHA may stop a trial
    reduction_factor: float = 2.0
    max_t: int | None = None  # epochs; default: the training config's epochs

    def __post_init__(self) -> None:
        if self.grace_period < 1:
            raise ValueError("scheduler.grace_period must be at least 1 epoch")
        if self.reduction_factor <= 1:
            raise ValueError("scheduler.reduction_factor must be above 1")


@dataclass
class SearchConfig:
    algorithm: Literal["random", "optuna"] = "random"  # random covers grid and sampled keys
    seed: int | None = None


@dataclass
class SweepConfig:
    name: str = "vda-sweep"  # a rerun with the same name resumes the sweep
    storage_path: str = "runs/sweeps"  # local folder or s3:// prefix: trials, checkpoints, results
    base: str | None = None  # training config file; folded into `train` on load
    train: dict[str, Any] = field(default_factory=dict)  # the base training config (nested)
    space: dict[str, Any] = field(default_factory=dict)  # dotted key -> {grid|choice|...: values}
    # eval-only sweeps: a fixed checkpoint scored under each sampled inference setting;
    # `space` keys are then eval config keys (inference.window.length, inference.input_size)
    eval: dict[str, Any] = field(default_factory=dict)
    metric: str = ""  # default: val_abs_rel (training), abs_rel (eval-only)
    mode: Literal["min", "max"] = "min"
    num_samples: int = 1  # samples per grid point
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    trial_driver_cpus: float = 0.1  # the Tune actor that drives one TorchTrainer
    max_concurrent_trials: int | None = None  # default: as many as the cluster's resources hold

    def __post_init__(self) -> None:
        if not self.space:
            raise ValueError("space is empty: name at least one training key to sweep")
        if self.num_samples < 1:
            raise ValueError("num_samples must be at least 1")
        reported = EVAL_METRICS if self.eval else EPOCH_METRICS
        self.metric = self.metric or reported[0]
        if self.metric not in reported:
            raise ValueError(f"metric {self.metric!r} is not reported; choose from {reported}")
        if self.eval and self.train:
            raise ValueError("a sweep is over training (train) or over evaluation (eval), not both")
        if self.trial_driver_cpus <= 0:
            raise ValueError("trial_driver_cpus must be above 0 (Ray rejects a 0-CPU trial)")


def fold_base(data: dict[str, Any], relative_to: Path | None) -> dict[str, Any]:
    """Merge the `base` file under `train` (or under `eval` for an eval-only sweep);
    explicit keys win."""
    base = data.get("base")
    if not base or not isinstance(base, str):
        return data
    path = Path(base)
    if not path.is_absolute() and relative_to is not None and not path.is_file():
        path = relative_to / path
    section = "eval" if data.get("eval") else "train"
    merged = _deep_merge(read_yaml(path), data.get(section) or {})
    return {**{k: v for k, v in data.items() if k != "base"}, section: merged}


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_sweep(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    """Sweep file (or inline mapping) <- overrides; the base training file folded in."""
    if not path:
        raise ConfigError("vda tune needs --config SWEEP.yaml (a search space has no default)")
    data = read_config_data(path)
    relative_to = None if str(path).lstrip().startswith("{") else Path(path).parent
    data = fold_base(apply_overrides(data, overrides), relative_to)
    return build(SweepConfig, data)
