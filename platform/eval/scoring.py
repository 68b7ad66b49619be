"""Scoring one sequence under each requested strategy, and `vda infer` outputs in process.

Runs inside a Ray task per sequence (`job.py` submits them): reads the
sequence from its shards, runs the checkpoint under each strategy (the
production key-frame engine, the video head at T = 1, window baselines, the
image model) or reads the outputs being scored, and scores each against the
ground truth with `vda.model.metrics` under the plan's protocol. A metric
checkpoint is scored twice: as metric depth (no alignment) and aligned.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np

from vda.model.metrics import SequenceResult, mean_over_sequences
from vda.model.precision import pick_device

from ..storage import S3Settings
from .config import EvalConfig
from .outputs import EvalReport, fit_size, frame_numbers, load_outputs, read_sequence
from .plan import EvalPlan, load_model, plan_eval
from .protocols import Crop


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

    from vda.model.strategies import predict_video

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
        device = pick_device()
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
            results[mode]["frame_abs_rel"] = [[f["frame"], f["abs_rel"]] for f in result.per_frame]
    return results


def score_task(plan: EvalPlan, entry: dict[str, Any]) -> tuple[str, Any, str | None]:
    """(sequence, {mode: metrics} or None, the error's last line or None): the Ray task."""
    try:
        return entry["sequence"], evaluate_one(plan, entry), None
    except Exception as error:  # recorded; the other sequences go on
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return entry["sequence"], None, last


def evaluate_outputs(
    outputs: str, dataset: str, settings: S3Settings | None = None, metric: bool | None = None
) -> EvalReport:
    """Per-sequence and overall AbsRel / delta1 / RMSE / TAE of `vda infer` outputs, in
    this process (the demo's check; `vda eval --outputs` is the same scoring as a Ray job).

    Relative (disparity) outputs get the per-sequence affine alignment; metric
    outputs (metadata.json, or `metric=True`) are converted to disparity first, so
    the numbers compare with relative models'.
    """
    config = EvalConfig(dataset=dataset, outputs=outputs, outputs_metric=metric)
    config.s3 = settings or config.s3
    plan = plan_eval(config)
    report = EvalReport(dataset=plan.manifest.get("dataset", dataset), max_depth=plan.cap)
    results: list[SequenceResult] = []
    for entry in plan.entries:
        scored = score_sequence(plan, entry)
        if not scored:
            report.missing.append(entry["sequence"])
            continue
        mode = "outputs" if "outputs" in scored else "outputs/aligned"
        result = scored[mode]
        results.append(result)
        report.sequences[entry["sequence"]] = result.as_dict()
    if results:
        report.overall = mean_over_sequences(results)
    return report
