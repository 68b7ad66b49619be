"""`vda prepare`: convert a raw video-depth data set (or generate a synthetic one) into shards."""

from __future__ import annotations

import argparse
import sys

from vda.platform.data.prepare import PrepareConfig, prepare

from .options import add_config_arguments, print_config, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=("png16", "npy", "sintel", "synthetic"))
    parser.add_argument("--src", help="source folder or s3:// prefix")
    parser.add_argument("--dst", help="destination folder or s3:// prefix for shards + manifest")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        PrepareConfig, args, {"layout": args.layout, "src": args.src, "dst": args.dst}
    )
    if args.print_config:
        print_config(config)
        return 0
    manifest = prepare(config)
    totals = manifest["totals"]
    print(
        f"{manifest['dataset']}: {totals['sequences']} sequences, {totals['frames']} frames, "
        f"{totals['chunks']} chunks -> {config.dst}/manifest.json"
    )
    for failure in manifest["failed"]:
        print(f"  FAILED {failure['sequence']}: {failure['error']}", file=sys.stderr)
    return 1 if manifest["failed"] else 0
