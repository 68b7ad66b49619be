"""`vda export`: the network as ONNX, verified in ONNX Runtime before it is kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from vda.model import load_checkpoint
from vda.model.onnx_export import ExportSettings, export_onnx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="official VDA or vda")
    parser.add_argument("--format", choices=("onnx",), default="onnx")
    parser.add_argument("-o", "--output", type=Path, default=Path("model.onnx"))
    parser.add_argument("--frames", type=int, default=32, help="frames of one window")
    parser.add_argument("--height", type=int, default=518, help="network input (multiple of 14)")
    parser.add_argument("--width", type=int, default=518, help="network input (multiple of 14)")
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="dynamic H and W (checked at a second size; refused where the exporter cannot)",
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="max |onnx - torch| / output range"
    )


def run(args: argparse.Namespace) -> int:
    model = load_checkpoint(args.checkpoint)  # size from the weights; metric_* names: metric
    settings = ExportSettings(
        frames=args.frames,
        height=args.height,
        width=args.width,
        dynamic=args.dynamic,
        tolerance=args.tolerance,
    )
    report = export_onnx(model, args.output, settings)
    for check in report.checks:
        print(
            f"checked {check['file']}: max |onnx - torch| = {check['max_diff_of_range']:.1e} of "
            f"the range (tolerance {check['tolerance']:.0e})"
        )
    for part, path in report.paths.items():
        print(f"{part}: {path}")
    return 0
