"""Tables and plots of the reproduction experiments (`experiments/run.sh`), for docs/RESULTS.md.

    python -m vda.platform.eval.summary runs/experiments docs

Reads the eval reports and the sweep's results table the run script left
under the experiments folder, writes `results/tables.md` and PNG plots
under the docs folder, and prints the tables.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

EXP1 = {
    "exp1-ssi": "SSI only",
    "exp1-tgm-official": "SSI + TGM (official)",
    "exp1-tgm-paper": "SSI + TGM (paper)",
    "exp1-ssi-seed1": "SSI only, seed 1",
    "exp1-tgm-official-seed1": "SSI + TGM (official), seed 1",
}
EXP1_OFFICIAL = {
    "exp1o-ssi": "SSI only",
    "exp1o-tgm": "SSI + 10 TGM (official defaults)",
    "exp1o-ssi-seed1": "SSI only, seed 1",
    "exp1o-tgm-seed1": "SSI + 10 TGM, seed 1",
    "exp1o-tgm-pseudo": "SSI + 10 TGM, + pseudo-labelled images 1:1",
}
EXP3 = {"exp1-tgm-official": "basic STH head", "exp3-diffcnn": "STH head + diff-CNN"}
STRATEGY_NAMES = {
    "keyframes": "overlap interpolation + key frames",
    "aligned_windows": "overlap + scale-shift alignment",
    "independent_windows": "no overlap",
    "per_frame": "per frame (T = 1)",
}


def _report(root: Path, name: str) -> dict[str, Any] | None:
    path = root / "reports" / name / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _model_table(root: Path, runs: dict[str, str]) -> list[str]:
    lines = [
        "| run | inference | AbsRel | delta1 | TAE |",
        "|---|---|---|---|---|",
    ]
    for name, label in runs.items():
        report = _report(root, name)
        if report is None:
            lines.append(f"| {label} | (not run) | | | |")
            continue
        for mode in ("keyframes", "per_frame"):
            overall = report["modes"].get(mode, {}).get("overall", {})
            lines.append(
                f"| {label} | {STRATEGY_NAMES[mode]} | {_cell(overall.get('abs_rel'))} | "
                f"{_cell(overall.get('delta1'))} | {_cell(overall.get('tae'), 3)} |"
            )
    return lines


def _long_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| strategy | AbsRel | delta1 | TAE | AbsRel first 100 frames | AbsRel last 100 frames |",
        "|---|---|---|---|---|---|",
    ]
    for mode, block in report["modes"].items():
        overall = block["overall"]
        curves = [np.asarray(s["frame_abs_rel"])[:, 1] for s in block["sequences"].values()]
        first = float(np.mean([c[:100].mean() for c in curves]))
        last = float(np.mean([c[-100:].mean() for c in curves]))
        lines.append(
            f"| {STRATEGY_NAMES[mode]} | {_cell(overall.get('abs_rel'))} | "
            f"{_cell(overall.get('delta1'))} | {_cell(overall.get('tae'), 3)} | "
            f"{first:.4f} | {last:.4f} |"
        )
    return lines


def _plot_long(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sequences = list(next(iter(report["modes"].values()))["sequences"])
    figure, axes = plt.subplots(len(sequences), 1, figsize=(9, 3 * len(sequences)), squeeze=False)
    for row, sequence in enumerate(sequences):
        axis = axes[row][0]
        for mode, block in report["modes"].items():
            curve = np.asarray(block["sequences"][sequence]["frame_abs_rel"])
            smooth = np.convolve(curve[:, 1], np.ones(15) / 15, mode="same")
            axis.plot(curve[:, 0], smooth, label=STRATEGY_NAMES[mode], linewidth=1)
        axis.set_title(f"{sequence}: per-frame AbsRel under one alignment per sequence")
        axis.set_xlabel("frame index")
        axis.set_ylabel("AbsRel (15-frame mean)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_models(root: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {**EXP1, "exp3-diffcnn": "STH + diff-CNN"}
    runs = {name: label.replace(", ", "\n") for name, label in runs.items()}
    reports = {label: _report(root, name) for name, label in runs.items()}
    reports = {k: v for k, v in reports.items() if v is not None}
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for axis, metric, title in ((axes[0], "abs_rel", "AbsRel"), (axes[1], "tae", "TAE")):
        labels = list(reports)
        x = np.arange(len(labels))
        for offset, mode in ((-0.2, "keyframes"), (0.2, "per_frame")):
            values = [reports[k]["modes"][mode]["overall"].get(metric, np.nan) for k in labels]
            axis.bar(x + offset, values, width=0.4, label=STRATEGY_NAMES[mode])
        axis.set_xticks(x, labels, rotation=15, fontsize=8)
        axis.set_title(f"held-out {title} (lower is better)")
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _number(text: str | None) -> str:
    return f"{float(text):.4f}" if text else "-"


def _sweep_table(path: Path) -> list[str]:
    rows = list(csv.DictReader(path.open()))
    keys = [k for k in rows[0] if k.startswith(("loss.", "data.", "optim."))]
    lines = [
        "| trial | status | epochs | "
        + " | ".join(keys)
        + " | val AbsRel | val delta1 | val TAE |",
        "|---|---|---|" + "---|" * len(keys) + "---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['trial_id']} | {row['status']} | {row['epochs']} | "
            + " | ".join(row[k] for k in keys)
            + " | "
            + " | ".join(_number(row.get(k)) for k in ("val_abs_rel", "val_delta1", "val_tae"))
            + " |"
        )
    return lines


def summarize(root: Path, docs: Path) -> str:
    out = docs / "results"
    out.mkdir(parents=True, exist_ok=True)
    sections = ["## Experiment 1: temporal loss", *_model_table(root, EXP1), ""]
    sections += [
        "## Experiment 1b: temporal loss under the official loss defaults",
        *_model_table(root, EXP1_OFFICIAL),
        "",
    ]
    sections += ["## Experiment 3: diff-CNN vs basic head", *_model_table(root, EXP3), ""]
    long_report = _report(root, "exp2-long")
    if long_report is not None:
        sections += ["## Experiment 2: long-video strategies", *_long_table(long_report), ""]
        _plot_long(long_report, out / "exp2_drift.png")
    _plot_models(root, out / "exp1_exp3_heldout.png")
    sweep = root / "sweeps" / "exp4-sweep" / "results.csv"
    if sweep.is_file():
        sections += ["## Experiment 4: sweep (sorted by val AbsRel)", *_sweep_table(sweep), ""]
    text = "\n".join(sections)
    (out / "tables.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), Path(sys.argv[2])))
