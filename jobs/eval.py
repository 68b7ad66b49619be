"""`vda eval`: score a checkpoint, or finished `vda infer` outputs, on a prepared data set.

    vda eval --checkpoint runs/vda-train/checkpoint_... --dataset s3://bucket/data/heldout
    vda eval --outputs s3://bucket/depth-out --dataset s3://bucket/data/heldout

A checkpoint runs under each of `strategies` (default: the key-frame engine and
per-frame T = 1 inference, side by side); per-sequence and overall AbsRel,
delta1, RMSE and TAE go to `<report>/<name>/report.{json,csv}` and MLflow.
"""

from __future__ import annotations

import argparse

from vda.platform.eval.config import EvalConfig

from .options import add_config_arguments, print_config, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="report name (folder under `report`, MLflow run name)")
    parser.add_argument("--dataset", help="prepared data set with ground truth (local or s3://)")
    parser.add_argument(
        "--checkpoint", help="model to evaluate (file, or Ray Train checkpoint dir)"
    )
    parser.add_argument("--outputs", help="or: a finished `vda infer` output prefix")
    parser.add_argument("--report", help="where reports go (local or s3://)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        EvalConfig,
        args,
        {
            "name": args.name,
            "dataset": args.dataset,
            "checkpoint": args.checkpoint,
            "outputs": args.outputs,
            "report": args.report,
        },
    )
    if args.print_config:
        print_config(config)
        return 0
    from vda.platform.eval.job import format_report, run_eval

    report = run_eval(config)
    print(format_report(report))
    if report.missing:
        print(f"no outputs for {len(report.missing)} sequence(s): {', '.join(report.missing)}")
    for sequence, error in report.failed.items():
        print(f"FAILED {sequence}: {error}")
    print(f"report: {report.location}/report.json (MLflow run {report.mlflow_run_id})")
    return 1 if report.failed else 0
