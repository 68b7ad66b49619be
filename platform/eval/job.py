"""`vda eval`: AbsRel / delta1 / RMSE / TAE of a model (or of `vda infer` outputs), per sequence.

The job: plan on the driver (`plan.py`), one Ray task per sequence
(`scoring.py`), the results gathered as they finish into the report
(`report.py`: JSON + CSV under `<report>/<name>/`, and an MLflow run). A
sequence that fails is recorded with its error and the others finish.
"""

from __future__ import annotations

from typing import Any

from ..core.progress import JobProgress
from ..core.session import start_ray
from .config import EvalConfig
from .plan import EvalPlan, plan_eval
from .report import EvalJobReport, add_result, finish, new_report, write_report
from .scoring import score_task


def submit(plan: EvalPlan) -> list[Any]:
    """One Ray task per sequence."""
    import ray

    start_ray()
    task = ray.remote(num_cpus=plan.config.cpus_per_task, max_retries=1)(score_task)
    return [task.remote(plan, entry) for entry in plan.entries]


def collect(plan: EvalPlan, pending: list[Any], progress=print) -> EvalJobReport:
    import ray

    report = new_report(plan)
    shown = JobProgress(len(pending), "vda eval", progress, unit="sequences")
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=shown.every_s)
        for ref in done:
            sequence, results, error = ray.get(ref)
            shown.item(add_result(report, sequence, results, error))
            shown.finished(error is None)
        shown.tick()
    shown.final()
    shown.close()
    return finish(report)


def score_in_process(plan: EvalPlan, progress=print) -> EvalJobReport:
    """The same scoring without Ray tasks (a sweep trial is already a Ray actor)."""
    report = new_report(plan)
    for entry in plan.entries:
        progress(add_result(report, *score_task(plan, entry)))
    return finish(report)


def run_eval(config: EvalConfig, progress=print) -> EvalJobReport:
    plan = plan_eval(config)  # bad input fails before Ray starts
    for note in plan.notes:
        progress(f"note: {note}")
    report = collect(plan, submit(plan), progress)
    return write_report(config, report)
