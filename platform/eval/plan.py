"""What one `vda eval` scores, settled before any task starts: the plan, and its models.

Reading the manifest, resolving a benchmark protocol (its scenes, crop, depth
cap and TAE variant) and loading the checkpoint happen here, on the driver, so
bad input is one error before Ray starts rather than one per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.pipeline import read_manifest
from ..weights import checkpoint_file, read_weights
from .config import EvalConfig
from .protocols import Preset, ProtocolError, benchmark_of, preset, select_sequences

MODE_LABELS = {
    "keyframes": "video model: overlap interpolation + key frames (as the paper infers)",
    "aligned_windows": "video model: overlapping windows, scale-shift aligned",
    "independent_windows": "video model: windows without overlap",
    "per_frame": "video head at T = 1 (no temporal context)",
    "image_model": "image model: Depth Anything V2 DPT head, no temporal modules, per frame",
    "outputs": "vda infer outputs",
}


def mode_label(mode: str) -> str:
    base, _, scoring = mode.partition("/")
    label = MODE_LABELS.get(base, base)
    if scoring == "metric":
        return f"{label}; metric depth, no alignment"
    if scoring == "aligned":
        return f"{label}; metric depth scored as relative (scale-shift aligned)"
    return label


_MODEL_CACHE: dict[tuple[str, bool | None, bool], Any] = {}  # per Ray worker process


def load_model(config: EvalConfig, uri: str | None = None, image_model: bool = False):
    """The model a checkpoint holds, its size read from the weights (`config.model` only
    for a bare state dict that does not say). A Depth Anything V2 checkpoint is the
    image model: the plain DPT head with no temporal modules."""
    from vda.model.checkpoint import detect_kind, load_checkpoint

    uri = checkpoint_file(uri or config.checkpoint, config.s3)
    key = (uri, config.metric, image_model)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    weights = read_weights(uri, config.s3)
    checkpoint = weights.read()
    overrides = {"temporal": False} if (image_model or detect_kind(checkpoint) == "dav2") else {}
    metric = config.metric if config.metric is not None else (weights.metric or None)
    model = load_checkpoint(checkpoint, config.model, metric=metric, **overrides)
    if len(_MODEL_CACHE) >= 2:  # the checkpoint and the image model; a vitl is 1.3 GB
        _MODEL_CACHE.clear()
    _MODEL_CACHE[key] = model
    return model


@dataclass
class EvalPlan:
    """What one evaluation scores: the data set, its sequences, the protocol and the models."""

    config: EvalConfig
    manifest: dict[str, Any]
    entries: list[dict[str, Any]]
    cap: float
    preset: Preset | None = None
    benchmark: str = ""
    tae_variant: str = "project"
    metric: bool = False  # the checkpoint predicts metric depth
    image_checkpoint: bool = False  # the checkpoint itself is an image model (DAv2)
    notes: list[str] = field(default_factory=list)

    def modes(self) -> list[str]:
        if self.config.outputs is not None:
            return ["outputs"]
        strategies = ["image_model"] if self.image_checkpoint else list(self.config.strategies)
        if self.config.image_model is not None:
            strategies.append("image_model")
        return strategies


def plan_eval(config: EvalConfig) -> EvalPlan:
    """Read the manifest, resolve the protocol and check the checkpoint: bad input fails here,
    before any task starts."""
    from vda.model.metrics import depth_cap

    from ..core.config import ConfigError

    manifest = read_manifest(config.dataset, config.s3)
    entries = manifest["sequences"]
    if config.sequences:
        unknown = sorted(set(config.sequences) - {e["sequence"] for e in entries})
        if unknown:
            raise ConfigError(f"sequences {unknown} are not in {config.dataset}")
        entries = [e for e in entries if e["sequence"] in config.sequences]
    plan = EvalPlan(config=config, manifest=manifest, entries=entries, cap=0.0)
    if config.protocol:
        try:
            plan.benchmark = benchmark_of(manifest, config.benchmark)
            plan.preset = preset(config.protocol, plan.benchmark)
            names = [e["sequence"] for e in entries]
            # sequences given explicitly win over the protocol's choice, with a note
            chosen, missing = (
                (names, []) if config.sequences else select_sequences(plan.preset, names)
            )
        except ProtocolError as error:
            raise ConfigError(str(error)) from None
        if config.sequences and (plan.preset.sequences or plan.preset.max_sequences):
            plan.notes.append(
                f"scored the {len(names)} sequence(s) given in `sequences`, not the "
                f"{config.protocol} {plan.benchmark} choice of scenes"
            )
        plan.entries = [e for e in entries if e["sequence"] in chosen]
        plan.cap = plan.preset.max_depth
        if missing:
            plan.notes.append(
                f"{config.protocol} {plan.benchmark} scores {len(plan.preset.sequences)} scenes; "
                f"the data set lacks {missing}: the numbers are not the full protocol's"
            )
        plan.tae_variant = config.tae or plan.preset.tae_variant
    else:
        plan.benchmark = config.benchmark or manifest.get("benchmark") or ""
        try:
            plan.cap = depth_cap(
                plan.benchmark or manifest.get("dataset", ""), manifest.get("max_depth")
            )
        except KeyError as error:
            raise ConfigError(error.args[0]) from None
        plan.tae_variant = config.tae or "project"
    if config.checkpoint is not None:
        model = load_model(config)  # an unreadable checkpoint is one error, not one per sequence
        plan.metric = bool(model.config.metric)
        plan.image_checkpoint = not model.config.temporal
        if config.image_model is not None:
            load_model(config, config.image_model, image_model=True)
    return plan
