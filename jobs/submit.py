"""`vda submit <job> [args]`: run any vda job on a Ray cluster through the Jobs API.

    vda submit --address http://head:8265 infer --config configs/infer_cluster.yaml

Prints the submission id and follows the logs unless --no-wait. AWS
credentials are not forwarded: the cluster's nodes use their own (instance
profile / IRSA). Only the variables named with --env are passed, by value.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Jobs API URL (default: $RAY_ADDRESS or 127.0.0.1:8265)")
    parser.add_argument("--no-wait", action="store_true", help="print the id and return")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME", help="forward this variable (repeat)"
    )
    parser.add_argument("job", help="the vda job to run there (train, infer, prepare, ...)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the job's own arguments")


def run(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import follow, submit

    env_vars = {name: os.environ[name] for name in args.env if name in os.environ}
    submission_id = submit(args.job, args.args, args.address, env_vars)
    print(f"submitted {submission_id}", flush=True)
    if args.no_wait:
        return 0
    status = follow(submission_id, args.address)
    print(f"\n{submission_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def add_id_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission_id")
    parser.add_argument("--address", help="Jobs API URL (default: $RAY_ADDRESS or 127.0.0.1:8265)")


def status(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import client

    print(client(args.address).get_job_status(args.submission_id))
    return 0


def logs(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import client

    sys.stdout.write(client(args.address).get_job_logs(args.submission_id))
    return 0


def stop(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import client

    stopped = client(args.address).stop_job(args.submission_id)
    print(f"{args.submission_id}: {'stopping' if stopped else 'not running'}")
    return 0
