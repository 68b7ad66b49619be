"""`vda eval`: AbsRel / delta1 / RMSE / TAE of a model (or of `vda infer` outputs), per sequence.

One Ray task per sequence reads the sequence from its shards, runs the
checkpoint under each requested strategy (the production key-frame engine,
the video head at T = 1, window baselines, the image model) and scores each
against the ground truth with the evaluation protocol of `vda.model.metrics`,
under an official benchmark preset (`protocols`) when one is asked for. A
metric checkpoint is scored twice: as metric depth (no alignment) and aligned.
A sequence that fails is recorded with its error and the others finish. The
report (JSON + CSV) goes to `<report>/<name>/` and onto an MLflow run.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import flatten, to_dict
from ..core.tracking import ensure_experiment, log_metrics, log_params
from ..data.pipeline import read_manifest
from ..storage import S3Settings, StorageError, exists, join, list_files, read_bytes, write_bytes
from .config import EvalConfig
from .protocols import Crop, Preset, ProtocolError, benchmark_of, preset, select_sequences

METRICS = ("abs_rel", "delta1", "rmse", "tae")
RUN_TAG = "vda.eval_name"
CHECKPOINT_FILE = "checkpoint.pt"  # inside a Ray Train checkpoint folder


@dataclass
class EvalJobReport:
    name: str
    dataset: str
    max_depth: float
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> overall + sequences
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None  # the preset applied, with its source lines
    benchmark: str = ""
    tae_variant: str = "project"
    notes: list[str] = field(default_factory=list)
    location: str = ""
    mlflow_run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "dataset": self.dataset, "max_depth": self.max_depth,
            "benchmark": self.benchmark, "protocol": self.protocol,
            "tae_variant": self.tae_variant, "notes": self.notes,
            "modes": self.modes, "missing": self.missing, "failed": self.failed,
        }  # fmt: skip


def checkpoint_uri(uri: str, settings: S3Settings | None = None) -> str:
    """A checkpoint file; a Ray Train checkpoint folder (as `vda train` prints it); or a
    training run's folder (`<storage_path>/<name>`), meaning its latest checkpoint."""
    if uri.endswith((".pt", ".pth", ".safetensors", ".bin")):
        return uri
    if exists(join(uri, CHECKPOINT_FILE), settings):
        return join(uri, CHECKPOINT_FILE)
    found = [f for f in list_files(uri, (".pt",), settings) if f.endswith("/" + CHECKPOINT_FILE)]
    if not found:
        raise StorageError(f"no {CHECKPOINT_FILE} under {uri}")
    return max(found)  # Ray Train names checkpoint folders by time: the last is the latest


MODE_LABELS = {
    "keyframes": "video model: overlap interpolation + key frames (as the paper infers)",
    "aligned_windows": "video model: overlapping windows, scale-shift aligned",
    "independent_windows": "video model: windows without overlap",
    "per_frame": "video head at T = 1 (no temporal context)",
    "image_model": "image model: Depth Anything V2 DPT head, no temporal modules, per frame",
    "outputs": "vda infer outputs",
}
_MODEL_CACHE: dict[tuple[str, bool | None, bool], Any] = {}  # per Ray worker process


def load_model(config: EvalConfig, uri: str | None = None, image_model: bool = False):
    """The model a checkpoint holds, its size read from the weights (`config.model` only
    for a bare state dict that does not say). A Depth Anything V2 checkpoint is the
    image model: the plain DPT head with no temporal modules."""
    from vda.model.checkpoint import (
        detect_kind,
        is_metric_name,
        load_checkpoint,
        read_checkpoint,
    )

    uri = checkpoint_uri(uri or config.checkpoint, config.s3)
    key = (uri, config.metric, image_model)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    stream = io.BytesIO(read_bytes(uri, config.s3))
    stream.name = uri  # named in errors
    checkpoint = read_checkpoint(stream)
    overrides = {"temporal": False} if (image_model or detect_kind(checkpoint) == "dav2") else {}
    metric = config.metric if config.metric is not None else (is_metric_name(uri) or None)
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


def _selected(plan: EvalPlan, entry: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(frame positions the model runs over, positions within those that are scored)."""
    count = int(entry["frames"])
    if plan.preset is None:
        return list(range(count)), list(range(count))
    infer = plan.preset.infer.positions(count)
    return infer, plan.preset.score.positions(len(infer))


def _score(
    plan: EvalPlan,
    prediction: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    intrinsics: np.ndarray | None,
    c2w: np.ndarray | None,
    alignment: str,
):
    from vda.model.metrics import evaluate_sequence

    want_tae = plan.preset.tae if plan.preset is not None else True
    return evaluate_sequence(
        prediction,
        depth,
        plan.cap,
        masks=valid,
        intrinsics=intrinsics if want_tae else None,
        c2w=None if (c2w is None or not want_tae) else list(c2w),
        alignment=alignment,
        tae_variant=plan.tae_variant,
    )


def score_sequence(plan: EvalPlan, entry: dict[str, Any]) -> dict[str, Any]:
    """{mode: SequenceResult} for one sequence; {} when outputs have none for it."""
    import torch

    from vda.model.strategies import predict_video

    from .outputs import fit_size, frame_numbers, load_outputs, read_sequence

    config = plan.config
    crop = plan.preset.crop if plan.preset is not None else Crop()
    infer_at, score_at = _selected(plan, entry)
    numbers = frame_numbers(entry)
    loaded = None
    if config.outputs is not None:
        loaded = load_outputs(config.outputs, entry["sequence"], config.s3)
        if loaded is None:
            return {}
        loaded.check_complete(entry["sequence"])
        if plan.preset is None:  # the frames the outputs hold (target_fps / max_len subsets)
            held = set(loaded.numbers.tolist())
            infer_at = [i for i, n in enumerate(numbers) if n in held]
            score_at = list(range(len(infer_at)))
    scored = [infer_at[i] for i in score_at]
    data = read_sequence(config.dataset, entry, config.s3)
    if len(data.depth) != len(numbers):
        raise ValueError(
            f"{entry['sequence']}: {len(data.depth)} frames in the shards, "
            f"{len(numbers)} in the manifest"
        )
    full_hw = tuple(data.depth.shape[-2:])
    depth, valid = crop.apply(data.depth[scored]), crop.apply(data.valid[scored])
    intrinsics = None if data.intrinsics is None else data.intrinsics[scored]
    if intrinsics is not None and (plan.preset is None or plan.preset.tae_crop_intrinsics):
        intrinsics = crop.intrinsics(intrinsics)  # no-op without a crop
    c2w = None if data.c2w is None else data.c2w[scored]

    predictions: dict[str, tuple[np.ndarray, bool]] = {}  # mode -> (scored prediction, metric)
    if loaded is not None:
        frames = loaded.frames([numbers[i] for i in scored], set(numbers), entry["sequence"])
        fitted, _ = fit_size(frames, full_hw, crop, config.size_mismatch, entry["sequence"])
        metric = config.outputs_metric if config.outputs_metric is not None else loaded.metric
        predictions["outputs"] = (fitted, bool(metric))
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        rgb = data.rgb[infer_at]
        if plan.preset is not None and plan.preset.crop_input:
            rgb = np.ascontiguousarray(np.moveaxis(crop.apply(np.moveaxis(rgb, -1, 1)), 1, -1))
        runs = [(mode, config.checkpoint, False) for mode in plan.modes() if mode != "image_model"]
        if "image_model" in plan.modes():
            runs.append(("image_model", config.image_model or config.checkpoint, True))
        for mode, uri, image in runs:
            model = load_model(config, uri, image_model=image)
            strategy = "per_frame" if mode == "image_model" else mode
            raw = predict_video(model, rgb, strategy, config.inference, device)[score_at]
            if not (plan.preset is not None and plan.preset.crop_input):
                raw, _ = fit_size(raw, full_hw, crop, "refuse", entry["sequence"])
            predictions[mode] = (raw, bool(model.config.metric))
    results = {}
    for mode, (prediction, metric) in predictions.items():
        if metric:  # scored as metric depth (no alignment), and aligned as relative disparity
            results[f"{mode}/metric"] = _score(
                plan, prediction, depth, valid, intrinsics, c2w, "none"
            )
            disparity = 1.0 / np.maximum(prediction, 1e-3)
            results[f"{mode}/aligned"] = _score(
                plan, disparity, depth, valid, intrinsics, c2w, "disparity_affine"
            )
        else:
            results[mode] = _score(
                plan, prediction, depth, valid, intrinsics, c2w, "disparity_affine"
            )
    return results


def evaluate_one(plan: EvalPlan, entry: dict[str, Any]) -> dict[str, Any]:
    """{mode: metrics} for one sequence (runs inside a Ray task)."""
    results = {}
    for mode, result in score_sequence(plan, entry).items():
        results[mode] = result.as_dict()
        if plan.config.frame_errors:
            results[mode]["frame_abs_rel"] = [
                [f["frame"], f["abs_rel"]] for f in result.per_frame
            ]  # fmt: skip
    return results


def _task(plan: EvalPlan, entry: dict[str, Any]) -> tuple[str, Any, str | None]:
    try:
        return entry["sequence"], evaluate_one(plan, entry), None
    except Exception as error:  # recorded; the other sequences go on
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return entry["sequence"], None, last


def _overall(sequences: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in METRICS:
        values = [s[key] for s in sequences.values() if s.get(key) is not None]
        values = [v for v in values if np.isfinite(v)]
        if values:
            out[key] = float(np.mean(values))
    out["sequences"] = len(sequences)
    return out


def to_csv(report: EvalJobReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["mode", "sequence", *METRICS, "frames"])
    for mode, block in report.modes.items():
        rows = [*block["sequences"].items(), ("overall", block["overall"])]
        for sequence, values in rows:
            cells = [values.get(k) for k in (*METRICS, "frames")]
            writer.writerow([mode, sequence, *("" if v is None else f"{v:.6g}" for v in cells)])
    return out.getvalue()


def mode_label(mode: str) -> str:
    base, _, scoring = mode.partition("/")
    label = MODE_LABELS.get(base, base)
    if scoring == "metric":
        return f"{label}; metric depth, no alignment"
    if scoring == "aligned":
        return f"{label}; metric depth scored as relative (scale-shift aligned)"
    return label


def submit(plan: EvalPlan) -> list[Any]:
    """One Ray task per sequence."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=True, configure_logging=False)
    task = ray.remote(num_cpus=plan.config.cpus_per_task, max_retries=1)(_task)
    return [task.remote(plan, entry) for entry in plan.entries]


def new_report(plan: EvalPlan) -> EvalJobReport:
    config = plan.config
    report = EvalJobReport(name=config.name, dataset=config.dataset, max_depth=plan.cap)
    report.protocol = plan.preset.describe() if plan.preset is not None else None
    report.benchmark = plan.benchmark
    report.tae_variant = plan.tae_variant
    report.notes = list(plan.notes)
    return report


def add_result(report: EvalJobReport, sequence: str, results: Any, error: str | None) -> str:
    """Record one sequence's outcome; returns its progress line."""
    if error is not None:
        report.failed[sequence] = error
        return f"{sequence}: FAILED: {error}"
    if not results:
        report.missing.append(sequence)
        return f"{sequence}: no outputs"
    for mode, values in results.items():
        report.modes.setdefault(mode, {"overall": {}, "sequences": {}})["sequences"][sequence] = (
            values
        )
    return f"{sequence}: " + ", ".join(_short(m, v) for m, v in results.items())


def finish(report: EvalJobReport) -> EvalJobReport:
    for mode, block in report.modes.items():
        block["sequences"] = dict(sorted(block["sequences"].items()))
        block["overall"] = _overall(block["sequences"])
        block["label"] = mode_label(mode)
    report.missing.sort()
    return report


def collect(plan: EvalPlan, pending: list[Any], progress=print) -> EvalJobReport:
    import ray

    report = new_report(plan)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        progress(add_result(report, *ray.get(done[0])))
    return finish(report)


def score_in_process(plan: EvalPlan, progress=print) -> EvalJobReport:
    """The same scoring without Ray tasks (a sweep trial is already a Ray actor)."""
    report = new_report(plan)
    for entry in plan.entries:
        progress(add_result(report, *_task(plan, entry)))
    return finish(report)


def write_report(
    config: EvalConfig, report: EvalJobReport, tags: dict[str, str] | None = None
) -> EvalJobReport:
    """report.json / report.csv under `<report>/<name>/`, and an MLflow run with both."""
    from mlflow.tracking import MlflowClient

    report.location = join(config.report, config.name)
    files = {"report.json": json.dumps(report.as_dict(), indent=2), "report.csv": to_csv(report)}
    for name, text in files.items():
        write_bytes(join(report.location, name), text.encode(), config.s3)
    tracking_uri, experiment_id = ensure_experiment(config.mlflow)
    client = MlflowClient(tracking_uri)
    run = client.create_run(
        experiment_id, run_name=config.name, tags={RUN_TAG: config.name, **(tags or {})}
    )
    report.mlflow_run_id = run.info.run_id
    log_params(client, run.info.run_id, flatten(to_dict(config)))
    metrics = {
        f"{mode}/{key}": value
        for mode, block in report.modes.items()
        for key, value in block["overall"].items()
    }
    metrics.update(
        {"sequences_failed": len(report.failed), "sequences_missing": len(report.missing)}
    )
    log_metrics(client, run.info.run_id, metrics, step=0)
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text)
            client.log_artifact(run.info.run_id, str(Path(folder, name)))
    client.set_terminated(run.info.run_id, status="FAILED" if report.failed else "FINISHED")
    return report


def run_eval(config: EvalConfig, progress=print) -> EvalJobReport:
    plan = plan_eval(config)  # bad input fails before Ray starts
    for note in plan.notes:
        progress(f"note: {note}")
    report = collect(plan, submit(plan), progress)
    return write_report(config, report)


def _short(mode: str, values: dict[str, Any]) -> str:
    tae = f" tae={values['tae']:.3g}" if values.get("tae") is not None else ""
    return f"{mode} abs_rel={values['abs_rel']:.4f} delta1={values['delta1']:.3f}{tae}"


def format_report(report: EvalJobReport) -> str:
    lines = []
    if report.protocol is not None:
        lines.append(f"protocol {report.protocol['protocol']} on {report.benchmark} "
                     f"(depth cap {report.max_depth:g} m, TAE {report.tae_variant})")  # fmt: skip
    lines.append(
        f"{'mode':22s} {'seqs':>4s} {'abs_rel':>8s} {'delta1':>7s} {'rmse':>8s} {'tae':>7s}"
    )
    for mode, block in report.modes.items():
        o = block["overall"]
        cells = [f"{o[k]:.4f}" if k in o else "-" for k in METRICS]
        lines.append(f"{mode:22s} {o['sequences']:>4d} {cells[0]:>8s} {cells[1]:>7s} "
                     f"{cells[2]:>8s} {cells[3]:>7s}  {block.get('label', '')}")  # fmt: skip
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
