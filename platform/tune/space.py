"""Search-space dimensions over dotted training keys, checked before any trial starts.

A sweep that names a misspelt key, or a window longer than the temporal
position encoding holds, would otherwise fail only when its first trial
builds a model: minutes on a cluster, after the drivers have been placed.
`validate_space` builds the training config for every value a dimension can
take (and for every combination of the discrete ones, while there are few)
so that such a sweep fails at once, naming the key.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any

from ..core.config import ConfigError, build
from ..train.config import TrainConfig
from .config import TRIAL_OWNED_KEYS, SweepConfig

KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
MAX_CHECKED_COMBINATIONS = 512


@dataclass(frozen=True)
class Dimension:
    key: str  # dotted training key, e.g. loss.tgm_weight
    kind: str  # one of KINDS
    values: tuple[Any, ...]  # grid/choice: the values; uniform/loguniform/randint: (low, high)

    @property
    def discrete(self) -> bool:
        return self.kind in ("grid", "choice")

    def probe_values(self) -> tuple[Any, ...]:
        """Values that stand for the whole dimension when checking configs."""
        if self.discrete:
            return self.values
        low, high = self.values
        return (low, high - 1) if self.kind == "randint" else (low, high)

    def to_tune(self):
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[
            self.kind
        ](low, high)

    def describe(self) -> str:
        return f"{self.kind} {list(self.values)}"


def parse_dimension(key: str, spec: Any) -> Dimension:
    where = f"search space {key}"
    if key in TRIAL_OWNED_KEYS:
        raise ConfigError(f"{where}: each trial sets {key!r} itself; it cannot be swept")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: expected one of {{{' | '.join(KINDS)}: ...}}, got {spec!r}")
    ((kind, values),) = spec.items()
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {kind} needs a non-empty list, got {values!r}")
    if kind in ("grid", "choice"):
        return Dimension(key, kind, tuple(values))
    if len(values) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ConfigError(f"{where}: {kind} needs [low, high] numbers, got {values!r}")
    low, high = values
    if not low < high:
        raise ConfigError(f"{where}: {kind} needs low < high, got {values!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {low!r}")
    if kind == "randint" and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"{where}: randint needs integers [low, high), got {values!r}")
    return Dimension(key, kind, (low, high))


def parse_space(space: dict[str, Any]) -> list[Dimension]:
    return [parse_dimension(key, spec) for key, spec in space.items()]


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    *parents, last = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
        node = child
    node[last] = value


def trial_config(base: dict[str, Any], sampled: dict[str, Any], **fixed: Any) -> TrainConfig:
    """The training config of one trial: base <- sampled values <- what the trial owns."""
    data = copy.deepcopy(base)
    for key, value in {**sampled, **fixed}.items():
        set_dotted(data, key, value)
    return build(TrainConfig, data)


def validate_space(sweep: SweepConfig) -> list[Dimension]:
    """Parse the space and build a training config for each value; ConfigError names the key."""
    try:
        build(TrainConfig, sweep.train)
    except ConfigError as error:
        raise ConfigError(f"base training config: {error}") from None
    dimensions = parse_space(sweep.space)
    for dimension in dimensions:
        for value in dimension.probe_values():
            _check(sweep.train, {dimension.key: value}, f"search space {dimension.key}={value!r}")
    if sweep.search.algorithm == "optuna":
        grids = [d.key for d in dimensions if d.kind == "grid"]
        if grids:
            raise ConfigError(
                f"search space {', '.join(grids)}: optuna samples; it cannot run a grid "
                "(use choice, or search.algorithm: random)"
            )
    probes = [[(d.key, v) for v in d.probe_values()] for d in dimensions]
    if len(probes) > 1 and math.prod(len(p) for p in probes) <= MAX_CHECKED_COMBINATIONS:
        for combination in itertools.product(*probes):
            sampled = dict(combination)
            names = ", ".join(f"{k}={v!r}" for k, v in sampled.items())
            _check(sweep.train, sampled, f"search space combination {names}")
    return dimensions


def _check(base: dict[str, Any], sampled: dict[str, Any], where: str) -> None:
    try:
        trial_config(base, sampled)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
