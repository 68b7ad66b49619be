"""`vda train`: DDP training of the spatio-temporal head (and diff-CNN) with Ray Train.

    vda train --config train.yaml [key=value ...]

A rerun with the same `name` (and `storage_path`) resumes from the latest
checkpoint; `max_failures` lets Ray restart dead workers from it.
"""

from __future__ import annotations

import argparse

from vda.platform.train.config import TrainConfig

from .options import add_config_arguments, print_config, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="run id (same name = resume)")
    parser.add_argument("--data", help="prepared training data set (local or s3://)")
    parser.add_argument("--storage-path", help="where checkpoints go (local or s3://)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        TrainConfig,
        args,
        {"name": args.name, "data.train": args.data, "storage_path": args.storage_path},
    )
    if args.print_config:
        print_config(config)
        return 0
    from vda.platform.train.driver import train

    result = train(config)
    metrics = {k: v for k, v in result.metrics.items() if k.startswith(("val_", "train_"))}
    print(f"run {result.name}: MLflow run {result.mlflow_run_id} at {result.tracking_uri}")
    print(f"latest checkpoint: {result.checkpoint_path}")
    print(f"best checkpoint:   {result.best_checkpoint_path}")
    print("final metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return 0
