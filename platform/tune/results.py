"""The sweep's outcome: one row per trial, sorted by the metric, and the best trial's files.

Tune knows which trials finished, failed or were stopped by the scheduler
only indirectly: a trial that ended without error before its last epoch was
stopped early. That status goes into the table and onto the trial's MLflow
child run, which otherwise stays RUNNING because its process was killed.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from .config import EVAL_METRICS

FINISHED, EARLY_STOPPED, ERRORED = "finished", "early_stopped", "error"
MLFLOW_STATUS = {FINISHED: "FINISHED", EARLY_STOPPED: "KILLED", ERRORED: "FAILED"}
SHOWN_METRICS = ("val_abs_rel", "val_delta1", "val_tae", "train_loss")


@dataclass
class TrialRow:
    trial_id: str
    name: str
    status: str
    sampled: dict[str, Any]
    epochs: int  # epochs completed
    value: float | None  # the sweep metric at the last report
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    error: str | None = None


def trial_status(epochs_done: int, epochs_planned: int, errored: bool) -> str:
    if errored:
        return ERRORED
    return FINISHED if epochs_done >= epochs_planned else EARLY_STOPPED


def sort_rows(rows: list[TrialRow], mode: str) -> list[TrialRow]:
    """Best first; trials without a finite metric last."""

    def key(row: TrialRow) -> tuple[int, float]:
        if row.value is None or not math.isfinite(row.value):
            return (1, 0.0)
        return (0, row.value if mode == "min" else -row.value)

    return sorted(rows, key=key)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table_columns(rows: list[TrialRow], metric: str) -> list[str]:
    keys = sorted({k for row in rows for k in row.sampled})
    metrics = EVAL_METRICS if metric in EVAL_METRICS else SHOWN_METRICS
    shown = [metric, *(m for m in metrics if m != metric)]
    return ["trial_id", "status", "epochs", *keys, *shown, "checkpoint"]


def _cells(row: TrialRow, columns: list[str], metric: str) -> dict[str, Any]:
    values = {
        "trial_id": row.trial_id,
        "status": row.status,
        "epochs": row.epochs,
        "checkpoint": row.checkpoint,
        **row.sampled,
        **row.metrics,
        metric: row.value,
    }
    return {c: values.get(c) for c in columns}


def to_csv(rows: list[TrialRow], metric: str) -> str:
    columns = table_columns(rows, metric)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:  # full precision: the file is data, the printed table is for reading
        writer.writerow(
            {k: "" if v is None else v for k, v in _cells(row, columns, metric).items()}
        )
    return out.getvalue()


def to_text(rows: list[TrialRow], metric: str) -> str:
    """A fixed-width table for the terminal (no checkpoint column: too wide)."""
    columns = [c for c in table_columns(rows, metric) if c != "checkpoint"]
    cells = [[_fmt(v) for v in _cells(row, columns, metric).values()] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
