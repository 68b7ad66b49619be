"""`vda pseudolabel`: a teacher's depth for unlabeled images, as a training data set.

    vda pseudolabel --input s3://images/ --output s3://data/pseudo --teacher CKPT

Writes clip shards of one-frame sequences (depth kind disparity) and a
manifest naming the teacher; a rerun skips the shards already labelled.
"""

from __future__ import annotations

import argparse

from vda.platform.pseudolabel.config import PseudoLabelConfig

from .options import add_config_arguments, print_config, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="prefix of images (local or s3://) or a .txt list")
    parser.add_argument("--output", help="the data set to write (local or s3://)")
    parser.add_argument("--teacher", help="teacher checkpoint: VDA, DAv2 or vda (local or s3://)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        PseudoLabelConfig,
        args,
        {"input": args.input, "output": args.output, "teacher": args.teacher},
    )
    if args.print_config:
        print_config(config)
        return 0
    from vda.platform.pseudolabel.job import run_pseudolabel

    manifest = run_pseudolabel(config)
    totals = manifest["totals"]
    print(
        f"vda pseudolabel: {totals['frames']} images labelled, {totals['failed']} failed; "
        f"teacher {manifest['teacher']['model_size']} ({manifest['teacher']['sha256'][:12]}); "
        f"manifest {config.output.rstrip('/')}/manifest.json"
    )
    return 0
