"""`vda tune`: hyper-parameter sweeps over the training job with Ray Tune.

    vda tune --config sweep.yaml [key=value ...]

Each trial is a distributed training run; ASHA stops the weak ones early. A
sweep with `eval:` instead of `train:` is eval-only: a fixed checkpoint scored
under each sampled inference setting (window geometry, input size).
A rerun with the same sweep `name` resumes unfinished trials and redoes
nothing that finished.
"""

from __future__ import annotations

import argparse

from vda.platform.tune.config import load_sweep

from .options import print_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="sweep YAML file (base training config + search space)")
    parser.add_argument("--name", help="sweep id (same name = resume)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="sweep overrides, e.g. num_samples=4"
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved sweep and exit"
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the search space and exit (no Ray)"
    )


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides or [])
    if args.name:
        overrides.insert(0, f"name={args.name}")
    sweep = load_sweep(args.config, overrides)  # ConfigError: reported by vda.jobs.cli
    if args.print_config:
        print_config(sweep)
        return 0
    if sweep.eval:
        from vda.platform.tune.eval_sweep import validate_eval_space as validate_space
    else:
        from vda.platform.tune.space import validate_space

    dimensions = validate_space(sweep)
    if args.check:
        for dimension in dimensions:
            print(f"{dimension.key}: {dimension.describe()}")
        print("search space OK")
        return 0
    from vda.platform.tune.results import to_text

    if sweep.eval:
        from vda.platform.tune.eval_sweep import run_eval_sweep as run_sweep
    else:
        from vda.platform.tune.sweep import run_sweep

    result = run_sweep(sweep)
    print(to_text(result.rows, sweep.metric))
    print(f"sweep {result.name}: MLflow parent run {result.mlflow_run_id} at {result.tracking_uri}")
    print(f"results: {result.output}")
    if result.best is None:
        print("no trial reported the metric; see the table above")
        return 1
    print(f"best trial {result.best.trial_id}: {sweep.metric}={result.best.value:.4g}")
    if result.best.checkpoint:
        print(f"best checkpoint: {result.best.checkpoint}")
    else:
        print(f"best settings: {result.best.sampled} ({result.output}/best_config.yaml)")
    return 0
