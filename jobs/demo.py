"""`vda demo`: what `make demo` runs; the whole platform end to end on embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

OFFICIAL = (
    "To run the same with the released weights (fetched by name into the Hugging Face cache):\n"
    "  vda infer --input <videos> --output <out>                  # vits, Apache-2.0\n"
    "  vda infer --input <videos> --output <out> --checkpoint vitl  # CC-BY-NC-4.0\n"
    "and fine-tune with vda train init=vits model.size=vits on data from vda prepare."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("demo_out"))
    parser.add_argument("--videos", type=Path, nargs="*", default=[], help="your own videos too")


def run(args: argparse.Namespace) -> int:
    from vda.platform.demo import run_demo

    result = run_demo(args.workdir, list(args.videos))
    workdir = result["workdir"]
    infer, report = result["infer"], result["eval"]
    print()
    print(f"vda demo finished in {result['seconds']:.0f} s")
    print(f"  training run:   {result['train'].name}, checkpoint {result['checkpoint']}")
    print(
        f"  bulk depth:     {infer.count('done')} videos done, {infer.count('failed')} failed, "
        f"{infer.frames} frames -> {workdir / 'depth'}"
    )
    print(f"  depth arrays:   {workdir / 'depth'}/<video>/depth.npz (float16, frame_index)")
    print(f"  previews:       {workdir / 'depth'}/<video>/preview.mp4")
    print(f"  manifest:       {infer.manifest}")
    overall = report.overall
    if overall:
        tae = f", TAE {overall['tae']:.2f}" if "tae" in overall else ""
        print(
            f"  held-out eval:  AbsRel {overall['abs_rel']:.3f}, delta1 {overall['delta1']:.3f}"
            f"{tae} over {overall['sequences']} synthetic sequences"
        )
    print(f"  MLflow runs:    mlflow ui --backend-store-uri {result['tracking']}")
    print()
    print(
        "This is a pipeline demonstration: a tiny model trained for a minute on synthetic\n"
        "scenes, so its depth is poor by design. " + OFFICIAL
    )
    return 0 if infer.count("failed") == 0 else 1
