"""`vda eval --suite FILE`: several checkpoints on several benchmarks as one Ray job, one table.

    name: table1
    protocol: official-500          # default for every data set
    datasets:
      - {name: sintel, path: s3://bench/sintel, protocol: official-110}
      - {name: kitti, path: s3://bench/kitti}
      - {name: scannet-tae, path: s3://bench/scannet, protocol: official-tae}
    models:
      - {name: VDA-S, checkpoint: s3://weights/video_depth_anything_vits.pth}
      - {name: DAv2-L, checkpoint: s3://weights/depth_anything_v2_vitl.pth}

Every (model, data set) pair is planned first (a bad path or protocol fails
before any task), then every sequence task of every pair is queued on Ray at
once. Each pair writes its own report and MLflow child run; the suite writes
`report.md` (the paper's columns: AbsRel / delta1 per data set, TAE) and
`report.csv` next to them and onto the parent run, with the published numbers
of the paper's Table 1 beside the rows of released models.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from vda.model.inference import InferenceConfig

from ..core.config import ConfigError, flatten, to_dict
from ..core.tracking import MlflowConfig, tracked_run
from ..storage import S3Settings, StorageError, join, write_bytes
from .config import EvalConfig
from .job import collect, submit
from .plan import EvalPlan, mode_label, plan_eval
from .report import EvalJobReport, write_report

SUITE_TAG = "vda.eval_suite"
PARENT_TAG = "mlflow.parentRunId"
CITATION = (
    "Chen et al., Video Depth Anything: Consistent Depth Estimation for Super-Long Videos, "
    "CVPR 2025 (arXiv 2501.12375), Table 1"
)
# The published numbers of the paper's Table 1 (delta1 and TAE;
# the AbsRel columns are not transcribed here), keyed by the protocol that produces
# them: Sintel's whole sequences (official-110), the four long-video data sets at
# ~500 frames (official-500: eval_500.sh holds exactly these four), TAE on ScanNet.
PAPER_TABLE1: dict[str, dict[tuple[str, str, str], float]] = {
    "VDA-L": {
        ("official-110", "sintel", "delta1"): 0.644,
        ("official-500", "kitti", "delta1"): 0.944,
        ("official-500", "scannet", "delta1"): 0.926,
        ("official-500", "bonn", "delta1"): 0.959,
        ("official-500", "nyuv2", "delta1"): 0.971,
        ("official-tae", "scannet", "tae"): 0.570,
    },
    "VDA-S": {
        ("official-500", "kitti", "delta1"): 0.942,
        ("official-500", "scannet", "delta1"): 0.876,
        ("official-500", "bonn", "delta1"): 0.950,
        ("official-500", "nyuv2", "delta1"): 0.959,
        ("official-tae", "scannet", "tae"): 0.703,
    },
    "DAv2-L": {("official-tae", "scannet", "tae"): 1.140},
}
# The mode of our evaluation that each paper row corresponds to.
PAPER_MODE = {"VDA-L": "keyframes", "VDA-S": "keyframes", "DAv2-L": "image_model"}
_RELEASED = (
    (r"^video_depth_anything_vits\.pth$", "VDA-S"),
    (r"^video_depth_anything_vitb\.pth$", "VDA-B"),
    (r"^video_depth_anything_vitl\.pth$", "VDA-L"),
    (r"^depth_anything_v2_vits\.pth$", "DAv2-S"),
    (r"^depth_anything_v2_vitb\.pth$", "DAv2-B"),
    (r"^depth_anything_v2_vitl\.pth$", "DAv2-L"),
)


def released_model(checkpoint: str) -> str:
    """The released model a checkpoint file is, by the official file names; "" if none."""
    name = checkpoint.rstrip("/").rsplit("/", 1)[-1]
    return next((row for pattern, row in _RELEASED if re.match(pattern, name)), "")


@dataclass
class SuiteDataset:
    name: str  # the table's column
    path: str  # a prepared data set (local or s3://)
    protocol: str = ""  # default: the suite's
    benchmark: str = ""  # default: the data set's manifest
    sequences: list[str] = field(default_factory=list)


@dataclass
class SuiteModel:
    name: str  # the table's row
    checkpoint: str
    paper: str = ""  # its row in the paper's Table 1; default: from the official file name
    metric: bool | None = None
    strategies: list[str] = field(default_factory=lambda: ["keyframes"])
    image_model: str | None = None  # a DAv2 checkpoint scored beside it, per frame


@dataclass
class SuiteConfig:
    name: str = "vda-suite"
    protocol: str = ""  # default protocol of every data set
    datasets: list[SuiteDataset] = field(default_factory=list)
    models: list[SuiteModel] = field(default_factory=list)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    report: str = "runs/eval"  # the suite's files go to <report>/<name>/
    cpus_per_task: float = 1.0
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    s3: S3Settings = field(default_factory=S3Settings)

    def __post_init__(self) -> None:
        if not self.datasets or not self.models:
            raise ValueError("a suite needs at least one entry under datasets and under models")
        for kind, names in (
            ("datasets", [d.name for d in self.datasets]),
            ("models", [m.name for m in self.models]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind}: names must be unique, repeated: {repeated}")


@dataclass
class SuiteResult:
    name: str
    location: str
    reports: dict[tuple[str, str], EvalJobReport]  # (model, data set) -> report
    markdown: str
    mlflow_run_id: str

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.reports.values())


def slug(name: str) -> str:
    """A table name as a storage key and MLflow metric name part (`tiny (a+b)` -> `tiny-a-b`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "unnamed"


def pair_config(suite: SuiteConfig, model: SuiteModel, dataset: SuiteDataset) -> EvalConfig:
    return EvalConfig(
        name=f"{slug(model.name)}--{slug(dataset.name)}",
        dataset=dataset.path,
        checkpoint=model.checkpoint,
        metric=model.metric,
        image_model=model.image_model,
        inference=suite.inference,
        strategies=list(model.strategies),
        sequences=list(dataset.sequences),
        protocol=dataset.protocol or suite.protocol,
        benchmark=dataset.benchmark,
        report=join(suite.report, suite.name),
        cpus_per_task=suite.cpus_per_task,
        mlflow=suite.mlflow,
        s3=suite.s3,
    )


def _shown(plan: EvalPlan) -> tuple[str, ...]:
    if plan.preset is not None:
        return ("tae",) if plan.preset.tae else ("abs_rel", "delta1")
    return ("abs_rel", "delta1", "tae")


HEADERS = {"abs_rel": "AbsRel", "delta1": "δ1", "tae": "TAE"}


def _cell(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if metric == "tae" else f"{value:.4f}"


def build_tables(
    suite: SuiteConfig,
    plans: dict[tuple[str, str], EvalPlan],
    reports: dict[tuple[str, str], EvalJobReport],
) -> tuple[str, str]:
    """(report.md, report.csv): one row per model and inference mode, paper rows beside."""
    columns = []
    for dataset in suite.datasets:
        plan = plans[(suite.models[0].name, dataset.name)]
        protocol = plan.preset.protocol if plan.preset is not None else "no protocol"
        for metric in _shown(plan):
            columns.append((dataset.name, metric, protocol, plan.benchmark))
    header = "| model | inference | " + " | ".join(
        f"{name} {HEADERS[metric]}" for name, metric, _, _ in columns
    )
    lines = [header + " |", "|---|---|" + "---|" * len(columns)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["model", "mode", "dataset", "protocol", "benchmark", "metric", "ours", "paper"]
    )
    for model in suite.models:
        paper_row = model.paper or released_model(model.checkpoint)
        modes: list[str] = []
        for dataset in suite.datasets:
            for mode in reports[(model.name, dataset.name)].modes:
                if mode not in modes:
                    modes.append(mode)
        for mode in modes:
            cells = []
            for name, metric, protocol, benchmark in columns:
                block = reports[(model.name, name)].modes.get(mode, {})
                value = block.get("overall", {}).get(metric)
                paper = None
                if PAPER_MODE.get(paper_row) == mode:
                    paper = PAPER_TABLE1.get(paper_row, {}).get((protocol, benchmark, metric))
                cells.append(_cell(value, metric))
                writer.writerow(
                    [
                        model.name,
                        mode,
                        name,
                        protocol,
                        benchmark,
                        metric,
                        "" if value is None else f"{value:.6g}",
                        "" if paper is None else paper,
                    ]
                )
            lines.append(f"| {model.name} | {mode_label(mode)} | " + " | ".join(cells) + " |")
            if PAPER_MODE.get(paper_row) == mode and paper_row in PAPER_TABLE1:
                published = [
                    _cell(PAPER_TABLE1[paper_row].get((p, b, m)), m) for _, m, p, b in columns
                ]
                lines.append(f"| {paper_row} (paper) | published | " + " | ".join(published) + " |")
    per_dataset = dict.fromkeys((name, protocol, bench) for name, _, protocol, bench in columns)
    protocols = ", ".join(
        f"{name}: {protocol} ({bench or 'not a benchmark'})"
        for name, protocol, bench in per_dataset
    )
    notes = [note for report in reports.values() for note in report.notes]
    failures = [
        f"{model} / {dataset}: {len(report.failed)} sequence(s) failed"
        for (model, dataset), report in reports.items()
        if report.failed
    ]
    markdown = "\n".join(
        [
            f"# Evaluation suite `{suite.name}`",
            "",
            *lines,
            "",
            f"Protocols: {protocols}.",
            f"Published rows: {CITATION} (δ1 and TAE; — where the paper has no such cell or it "
            "is not transcribed here).",
            *(f"Note: {n}" for n in dict.fromkeys(notes)),
            *(f"FAILED: {f}" for f in failures),
        ]
    )
    return markdown + "\n", out.getvalue()


def run_suite(suite: SuiteConfig, progress=print) -> SuiteResult:

    plans: dict[tuple[str, str], EvalPlan] = {}
    for model in suite.models:
        for dataset in suite.datasets:
            try:
                plans[(model.name, dataset.name)] = plan_eval(pair_config(suite, model, dataset))
            except (ConfigError, StorageError, ValueError, OSError) as error:
                raise ConfigError(f"suite {model.name} on {dataset.name}: {error}") from None
    with tracked_run(suite.mlflow, suite.name, tags={SUITE_TAG: suite.name}) as parent:
        parent.log_params(flatten(to_dict(suite)))
        pending = {key: submit(plan) for key, plan in plans.items()}  # every task queued at once
        reports = {}
        for key, refs in pending.items():
            progress(f"{key[0]} on {key[1]}:")
            report = collect(plans[key], refs, lambda line: progress(f"  {line}"))
            reports[key] = write_report(plans[key].config, report, tags={PARENT_TAG: parent.run_id})
        markdown, table = build_tables(suite, plans, reports)
        location = join(suite.report, suite.name)
        files = {"report.md": markdown, "report.csv": table}
        for name, text in files.items():
            write_bytes(join(location, name), text.encode(), suite.s3)
        parent.log_metrics(
            {
                f"{slug(model)}/{mode}/{slug(dataset)}/{key}": value
                for (model, dataset), report in reports.items()
                for mode, block in report.modes.items()
                for key, value in block["overall"].items()
                if key != "sequences"
            }
        )
        parent.log_texts(files)
        parent.status = "FAILED" if any(r.failed for r in reports.values()) else "FINISHED"
    parent_id = parent.run_id
    return SuiteResult(suite.name, location, reports, markdown, parent_id)


def load_suite(path: str, overrides: list[str] | tuple[str, ...] = ()) -> SuiteConfig:
    from ..core.config import load_config

    return load_config(SuiteConfig, path, list(overrides))
