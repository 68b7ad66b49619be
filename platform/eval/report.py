"""The evaluation report: per-sequence and overall numbers, as JSON, CSV, a table and a run."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.config import flatten, to_dict
from ..core.tracking import tracked_run
from ..storage import join, write_bytes
from .config import EvalConfig
from .plan import EvalPlan, mode_label

METRICS = ("abs_rel", "delta1", "rmse", "tae")
RUN_TAG = "vda.eval_name"


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
            "name": self.name,
            "dataset": self.dataset,
            "max_depth": self.max_depth,
            "benchmark": self.benchmark,
            "protocol": self.protocol,
            "tae_variant": self.tae_variant,
            "notes": self.notes,
            "modes": self.modes,
            "missing": self.missing,
            "failed": self.failed,
        }


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


def write_report(
    config: EvalConfig, report: EvalJobReport, tags: dict[str, str] | None = None
) -> EvalJobReport:
    """report.json / report.csv under `<report>/<name>/`, and an MLflow run with both."""
    report.location = join(config.report, config.name)
    files = {"report.json": json.dumps(report.as_dict(), indent=2), "report.csv": to_csv(report)}
    for name, text in files.items():
        write_bytes(join(report.location, name), text.encode(), config.s3)
    with tracked_run(
        config.mlflow, config.name, tags={RUN_TAG: config.name, **(tags or {})}
    ) as run:
        report.mlflow_run_id = run.run_id
        run.log_params(flatten(to_dict(config)))
        metrics = {
            f"{mode}/{key}": value
            for mode, block in report.modes.items()
            for key, value in block["overall"].items()
        }
        metrics.update(
            {"sequences_failed": len(report.failed), "sequences_missing": len(report.missing)}
        )
        run.log_metrics(metrics)
        run.log_texts(files)
        run.status = "FAILED" if report.failed else "FINISHED"
    return report


def _short(mode: str, values: dict[str, Any]) -> str:
    tae = f" tae={values['tae']:.3g}" if values.get("tae") is not None else ""
    return f"{mode} abs_rel={values['abs_rel']:.4f} delta1={values['delta1']:.3f}{tae}"


def format_report(report: EvalJobReport) -> str:
    lines = []
    if report.protocol is not None:
        lines.append(
            f"protocol {report.protocol['protocol']} on {report.benchmark} "
            f"(depth cap {report.max_depth:g} m, TAE {report.tae_variant})"
        )
    lines.append(
        f"{'mode':22s} {'seqs':>4s} {'abs_rel':>8s} {'delta1':>7s} {'rmse':>8s} {'tae':>7s}"
    )
    for mode, block in report.modes.items():
        o = block["overall"]
        cells = [f"{o[k]:.4f}" if k in o else "-" for k in METRICS]
        lines.append(
            f"{mode:22s} {o['sequences']:>4d} {cells[0]:>8s} {cells[1]:>7s} "
            f"{cells[2]:>8s} {cells[3]:>7s}  {block.get('label', '')}"
        )
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
