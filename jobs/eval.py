"""`vda eval`: score a checkpoint, or finished `vda infer` outputs, on a prepared data set.

    vda eval --checkpoint runs/vda-train/checkpoint_... --dataset s3://bucket/data/heldout
    vda eval --outputs s3://bucket/depth-out --dataset s3://bucket/data/heldout
    vda eval --checkpoint video_depth_anything_vits.pth --dataset s3://bench/kitti \
        --protocol official-500
    vda eval --suite table1.yaml

A checkpoint runs under each of `strategies` (default: the key-frame engine and
the video head at T = 1, side by side); per-sequence and overall AbsRel,
delta1, RMSE and TAE go to `<report>/<name>/report.{json,csv}` and MLflow.
`--protocol` applies an official benchmark preset (frames, crop, depth cap,
sequences, TAE); `--suite` runs several checkpoints on several data sets as
one Ray job and writes the paper-style table (`report.md`, `report.csv`).
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
    parser.add_argument(
        "--protocol", help="official benchmark preset: official-110 | official-500 | official-tae"
    )
    parser.add_argument(
        "--image-model", help="a Depth Anything V2 checkpoint: the per-frame image baseline"
    )
    parser.add_argument(
        "--metric",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the checkpoint predicts metric depth (default: a `metric_*` file name says so)",
    )
    parser.add_argument("--report", help="where reports go (local or s3://)")
    parser.add_argument(
        "--suite", help="a suite YAML: several checkpoints x data sets, one table (report.md)"
    )
    add_config_arguments(parser)


def _run_suite(args: argparse.Namespace) -> int:
    from vda.platform.eval.suite import load_suite, run_suite

    overrides = list(args.overrides or [])
    for key, value in (("name", args.name), ("report", args.report)):
        if value is not None:
            overrides.insert(0, f"{key}={value}")
    suite = load_suite(args.suite, overrides)  # ConfigError: reported by vda.jobs.cli
    if args.print_config:
        print_config(suite)
        return 0
    result = run_suite(suite)
    print(result.markdown)
    print(f"report: {result.location}/report.md (MLflow run {result.mlflow_run_id})")
    return 1 if result.failed else 0


def run(args: argparse.Namespace) -> int:
    if args.suite:
        return _run_suite(args)
    config = resolve_config(
        EvalConfig,
        args,
        {
            "name": args.name,
            "dataset": args.dataset,
            "checkpoint": args.checkpoint,
            "outputs": args.outputs,
            "protocol": args.protocol,
            "image_model": args.image_model,
            "metric": args.metric,
            "report": args.report,
        },
    )
    if args.print_config:
        print_config(config)
        return 0
    from vda.platform.eval.job import run_eval
    from vda.platform.eval.report import format_report

    report = run_eval(config)
    print(format_report(report))
    if report.missing:
        print(f"no outputs for {len(report.missing)} sequence(s): {', '.join(report.missing)}")
    for sequence, error in report.failed.items():
        print(f"FAILED {sequence}: {error}")
    print(f"report: {report.location}/report.json (MLflow run {report.mlflow_run_id})")
    return 1 if report.failed else 0
