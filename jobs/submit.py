"""`vda submit <job> [args]`: run any vda job on a Ray cluster through the Jobs API.

    vda submit --address http://head:8265 infer --config configs/infer_cluster.yaml

Prints the submission id and follows the logs unless --no-wait. AWS
credentials are not forwarded: the cluster's nodes use their own (instance
profile / IRSA). Only the variables named with --env are passed, by value.
A cluster with token authentication (Ray 2.60's default for `ray start
--head`) gets the local token (~/.ray/auth_token, RAY_AUTH_TOKEN[_PATH]) or
the one in --token-file.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Jobs API URL (default: $RAY_ADDRESS or 127.0.0.1:8265)")
    _add_token_argument(parser)
    parser.add_argument("--no-wait", action="store_true", help="print the id and return")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME", help="forward this variable (repeat)"
    )
    parser.add_argument("job", help="the vda job to run there (train, infer, prepare, ...)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the job's own arguments")


def _add_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-file",
        help="the cluster's auth token (default: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, "
        "~/.ray/auth_token)",
    )


def run(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import follow, submit

    env_vars = {name: os.environ[name] for name in args.env if name in os.environ}
    submission_id = submit(args.job, args.args, args.address, env_vars, args.token_file)
    print(f"submitted {submission_id}", flush=True)
    if args.no_wait:
        return 0
    status = follow(submission_id, args.address, token_file=args.token_file)
    print(f"\n{submission_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def add_id_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission_id")
    parser.add_argument("--address", help="Jobs API URL (default: $RAY_ADDRESS or 127.0.0.1:8265)")
    _add_token_argument(parser)


def _api(args: argparse.Namespace):
    from vda.platform.cluster.submit import client

    return client(args.address, args.token_file)


def status(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import call

    print(call(_api(args), "get_job_status", args.submission_id))
    return 0


def logs(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import call

    sys.stdout.write(call(_api(args), "get_job_logs", args.submission_id))
    return 0


def stop(args: argparse.Namespace) -> int:
    from vda.platform.cluster.submit import call

    stopped = call(_api(args), "stop_job", args.submission_id)
    print(f"{args.submission_id}: {'stopping' if stopped else 'not running'}")
    return 0
