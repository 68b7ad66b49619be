"""`vda eval`: AbsRel / delta1 / RMSE / TAE of a model (or of `vda infer` outputs), per sequence.

One Ray task per sequence reads the sequence from its shards, runs the
checkpoint under each requested strategy (the production key-frame engine,
per-frame T = 1 inference, window baselines) and scores each against the
ground truth with the evaluation protocol of `vda.model.metrics`. A sequence
that fails is recorded with its error and the others finish. The report
(JSON + CSV) goes to `<report>/<name>/` and onto an MLflow run.
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
    location: str = ""
    mlflow_run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "dataset": self.dataset, "max_depth": self.max_depth,
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


def load_model(config: EvalConfig):
    from vda.model import load_checkpoint

    uri = checkpoint_uri(config.checkpoint, config.s3)
    stream = io.BytesIO(read_bytes(uri, config.s3))
    stream.name = uri  # named in errors
    return load_checkpoint(stream, config.model)


def evaluate_one(config: EvalConfig, entry: dict[str, Any], cap: float) -> dict[str, Any]:
    """{mode: metrics} for one sequence (runs inside a Ray task)."""
    import torch

    from vda.model.metrics import evaluate_sequence
    from vda.model.strategies import predict_video

    from .outputs import predicted_depth, read_sequence

    data = read_sequence(config.dataset, entry, config.s3)
    predictions: dict[str, np.ndarray] = {}
    if config.outputs is not None:
        prediction = predicted_depth(config.outputs, entry["sequence"], config.s3)
        if prediction is None:
            return {}
        if config.outputs_metric:
            prediction = 1.0 / np.maximum(prediction, 1e-3)
        predictions["outputs"] = prediction
    else:
        model = load_model(config)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        for strategy in config.strategies:
            prediction = predict_video(model, data.rgb, strategy, config.inference, device)
            if model.config.metric:
                prediction = 1.0 / np.maximum(prediction, 1e-3)
            predictions[strategy] = prediction
    results = {}
    for mode, prediction in predictions.items():
        count = min(len(prediction), len(data.depth))
        result = evaluate_sequence(
            prediction[:count],
            data.depth[:count],
            cap,
            masks=data.valid[:count],
            intrinsics=None if data.intrinsics is None else data.intrinsics[:count],
            c2w=None if data.c2w is None else list(data.c2w[:count]),
        )
        results[mode] = result.as_dict()
        if config.frame_errors:
            results[mode]["frame_abs_rel"] = [
                [f["frame"], f["abs_rel"]] for f in result.per_frame
            ]  # fmt: skip
    return results


def _task(config: EvalConfig, entry: dict[str, Any], cap: float) -> tuple[str, Any, str | None]:
    try:
        return entry["sequence"], evaluate_one(config, entry, cap), None
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


def run_eval(config: EvalConfig, progress=print) -> EvalJobReport:
    import ray
    from mlflow.tracking import MlflowClient

    from vda.model.metrics import depth_cap

    manifest = read_manifest(config.dataset, config.s3)  # bad input fails before Ray starts
    if config.checkpoint is not None:
        load_model(config)  # an unreadable checkpoint is one error, not one per sequence
    entries = manifest["sequences"]
    if config.sequences:
        unknown = sorted(set(config.sequences) - {e["sequence"] for e in entries})
        if unknown:
            from ..core.config import ConfigError

            raise ConfigError(f"sequences {unknown} are not in {config.dataset}")
        entries = [e for e in entries if e["sequence"] in config.sequences]
    cap = depth_cap(manifest.get("dataset", ""), manifest.get("max_depth"))
    if not ray.is_initialized():
        ray.init(log_to_driver=True, configure_logging=False)
    task = ray.remote(num_cpus=config.cpus_per_task, max_retries=1)(_task)
    pending = [task.remote(config, entry, cap) for entry in entries]
    report = EvalJobReport(name=config.name, dataset=config.dataset, max_depth=cap)
    per_mode: dict[str, dict[str, Any]] = {}
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        sequence, results, error = ray.get(done[0])
        if error is not None:
            report.failed[sequence] = error
            progress(f"{sequence}: FAILED: {error}")
        elif not results:
            report.missing.append(sequence)
        else:
            for mode, values in results.items():
                per_mode.setdefault(mode, {})[sequence] = values
            progress(f"{sequence}: " + ", ".join(_short(m, v) for m, v in results.items()))
    for mode, sequences in per_mode.items():
        ordered = dict(sorted(sequences.items()))
        report.modes[mode] = {"overall": _overall(ordered), "sequences": ordered}
    report.missing.sort()
    report.location = join(config.report, config.name)
    files = {"report.json": json.dumps(report.as_dict(), indent=2), "report.csv": to_csv(report)}
    for name, text in files.items():
        write_bytes(join(report.location, name), text.encode(), config.s3)
    tracking_uri, experiment_id = ensure_experiment(config.mlflow)
    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id, run_name=config.name, tags={RUN_TAG: config.name})
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


def _short(mode: str, values: dict[str, Any]) -> str:
    tae = f" tae={values['tae']:.3g}" if values.get("tae") is not None else ""
    return f"{mode} abs_rel={values['abs_rel']:.4f} delta1={values['delta1']:.3f}{tae}"


def format_report(report: EvalJobReport) -> str:
    lines = [f"{'mode':22s} {'seqs':>4s} {'abs_rel':>8s} {'delta1':>7s} {'rmse':>8s} {'tae':>7s}"]
    for mode, block in report.modes.items():
        o = block["overall"]
        cells = [f"{o[k]:.4f}" if k in o else "-" for k in METRICS]
        lines.append(f"{mode:22s} {o['sequences']:>4d} {cells[0]:>8s} {cells[1]:>7s} "
                     f"{cells[2]:>8s} {cells[3]:>7s}")  # fmt: skip
    return "\n".join(lines)
