"""`vda convert`: move weights between the official VDA layout and vda checkpoints.

Reads any supported layout (official VDA, metric VDA, Depth Anything V2, timm
DINOv2, vda) and writes either the official layout (loadable by the official
code with strict=True) or a vda checkpoint (with its model config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vda.model import export_official, load_checkpoint, save_checkpoint
from vda.model.checkpoint import file_sha256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="checkpoint to read (.pth / .safetensors)")
    parser.add_argument("target", type=Path, help="file to write")
    parser.add_argument("--to", choices=("official", "vda"), default="vda", help="layout to write")
    parser.add_argument(
        "--temporal-diff",
        choices=("none", "diff_cnn"),
        default=None,
        help="build the model with this temporal-difference branch (vda layout only)",
    )


def run(args: argparse.Namespace) -> int:
    overrides = {}
    if args.temporal_diff:
        overrides["temporal_diff"] = args.temporal_diff
    model = load_checkpoint(args.source, **overrides)
    args.target.parent.mkdir(parents=True, exist_ok=True)
    if args.to == "official":
        export_official(model, args.target)
    else:
        save_checkpoint(model, args.target, extra={"converted_from": args.source.name})
    print(
        f"wrote {args.target} ({args.to} layout, {model.config.size}, "
        f"sha256 {file_sha256(args.target)[:16]})"
    )
    return 0
