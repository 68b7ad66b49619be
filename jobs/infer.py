"""`vda infer`: bulk depth for a video archive, on a pool of Ray actors that follows the cluster.

    vda infer --input s3://archive/videos/ --output s3://archive/depth/ --checkpoint CKPT

Writes per-video outputs (docs/depth.md) and a manifest; a rerun processes only
what is not committed yet. Exit status: 2 when no actor (or fewer than
actors.min_actors) could start; 1 on failed videos only with --fail-on-error.
"""

from __future__ import annotations

import argparse
import sys

from vda.platform.infer.config import InferConfig

from .options import add_config_arguments, print_config, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="prefix of videos (local or s3://) or a .txt list")
    parser.add_argument("--output", help="output prefix (local or s3://)")
    parser.add_argument(
        "--checkpoint",
        help="a released model by name (default vits; vitb, vitl, metric-vit*) or a checkpoint, "
        "local or s3://",
    )
    parser.add_argument("--fail-on-error", action="store_true", default=None)
    parser.add_argument(
        "--plan",
        action="store_true",
        help="list, check what is done and read the to-do videos' headers; start nothing",
    )
    parser.add_argument(
        "--plan-fps", type=float, help="frames/s one actor achieves, for --plan's estimate"
    )
    parser.add_argument(
        "--plan-sample",
        type=int,
        default=1000,
        metavar="N",
        help="--plan reads the headers of N random to-do videos and scales by bytes "
        "(0: every one; default 1000)",
    )
    parser.add_argument(
        "--verbose", action="store_true", default=None, help="a line per finished video"
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        InferConfig,
        args,
        {
            "input": args.input,
            "output": args.output,
            "checkpoint": args.checkpoint,
            "fail_on_error": args.fail_on_error,
            "verbose": args.verbose,
        },
    )
    if args.print_config:
        print_config(config)
        return 0
    if args.plan:
        from vda.platform.infer.plan import plan_job, plan_table

        plan = plan_job(config, check_writes=False)
        print("\n".join(plan_table(config, plan, args.plan_fps, args.plan_sample)))
        return 0
    from vda.platform.infer.job import run_infer
    from vda.platform.infer.lease import LeaseHeld, LeaseLost
    from vda.platform.infer.pool import PoolStartError

    try:
        result = run_infer(config)
    except (PoolStartError, LeaseHeld, LeaseLost) as error:
        print(f"vda infer: stopped: {error}", file=sys.stderr)
        return 2
    print(
        f"vda infer: {result.count('done')} done, {result.count('failed')} failed, "
        f"{result.count('skipped')} skipped; {result.frames} frames in {result.seconds:.1f} s; "
        f"manifest {result.manifest}; MLflow run {result.mlflow_run_id}"
    )
    for row in result.failed(20):
        print(f"  FAILED {row.video}: {row.error}", file=sys.stderr)
    if result.count("failed") > 20:
        print(
            f"  ... and {result.count('failed') - 20} more (status 'failed' in the manifest)",
            file=sys.stderr,
        )
    if result.outliers:
        print(
            f"vda infer: {len(result.outliers)} videos to review first (flag `outlier` in the manifest):"
        )
        for row in result.outliers[:20]:
            print(f"  {row.video_id}: {row.outlier_reasons}")
    return 1 if (config.fail_on_error and result.count("failed")) else 0
