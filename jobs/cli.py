"""The `vda` command: one subcommand per job.

Each job lives in its own module with `add_arguments(parser)` and
`run(args) -> int`; this file only wires them together, so that `vda train`
can be followed from here to the optimizer step in one hop.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    name: str
    module: str  # vda.jobs.<module>
    summary: str


JOBS: tuple[Job, ...] = (
    Job("infer", "infer", "bulk depth for a video archive in object storage (Ray actors)"),
    Job("depth", "depth", "depth for local videos on this machine (streaming engine)"),
    Job("train", "train", "DDP training of the spatio-temporal head (Ray Train)"),
    Job("tune", "tune", "hyper-parameter sweeps over training (Ray Tune, ASHA)"),
    Job("eval", "eval", "AbsRel / delta1 / TAE of a checkpoint or of infer outputs"),
    Job("prepare", "prepare", "convert raw video-depth data sets into clip shards"),
    Job("pseudolabel", "pseudolabel", "a teacher's depth for unlabeled images, as clip shards"),
    Job("bench", "bench", "benchmarks that print measured ratios"),
    Job("submit", "submit", "submit any job to a Ray cluster (Ray Jobs API)"),
    Job("status", "job_status", "status of a submitted job"),
    Job("logs", "job_logs", "logs of a submitted job"),
    Job("stop", "job_stop", "stop a submitted job"),
    Job("export", "export", "the network as ONNX, checked in ONNX Runtime against PyTorch"),
    Job("convert", "convert", "convert checkpoints between official and vda layouts"),
    Job("demo", "demo", "the end-to-end demonstration that `make demo` runs"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vda",
        description="Video Depth Anything on Ray: train, sweep, evaluate and bulk-infer depth.",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show Ray's, MLflow's and other frameworks' log lines and warnings "
        "(by default they go to the session's vda.log)",
    )
    sub = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    for job in JOBS:
        job_parser = sub.add_parser(job.name, help=job.summary, description=job.summary)
        importlib.import_module(f"vda.jobs.{job.module}").add_arguments(job_parser)
        job_parser.set_defaults(_job=job)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that describe bad input (a path, a file, a config): one line, no traceback."""
    from vda.model.checkpoint import CheckpointError
    from vda.model.onnx_export import OnnxExportError
    from vda.model.onnx_runtime import OnnxNetworkError
    from vda.platform.cluster.submit import ClusterAuthError
    from vda.platform.core.config import ConfigError
    from vda.platform.core.connect import ClusterConnectError
    from vda.platform.data.layouts import LayoutError
    from vda.platform.storage import StorageError
    from vda.platform.train.config import WorkersNotPlacedError
    from vda.platform.video import VideoDecodeError

    return (
        CheckpointError,
        ClusterAuthError,
        ClusterConnectError,
        ConfigError,
        LayoutError,
        OnnxExportError,
        OnnxNetworkError,
        StorageError,
        VideoDecodeError,
        WorkersNotPlacedError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    from vda.platform.core.session import VERBOSE_ENV, quiet_frameworks

    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"  # Ray workers and job subprocesses inherit it
    quiet_frameworks()
    job: Job = args._job
    try:
        return int(importlib.import_module(f"vda.jobs.{job.module}").run(args) or 0)
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise
        print(f"vda {job.name}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
