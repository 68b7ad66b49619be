"""`vda bench <what>`: benchmarks that print ratios measured in one run on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="WHAT", required=True)
    inference = sub.add_parser(
        "inference", help="speed levers, encoder-cache speed-up, memory bound"
    )
    inference.add_argument("--size", default="vits", choices=("tiny", "vits", "vitb", "vitl"))
    inference.add_argument("--frames", type=int, default=76, help="frames in the speed clip")
    inference.add_argument("--height", type=int, default=518)
    inference.add_argument("--width", type=int, default=518)
    inference.add_argument("--input-size", type=int, default=518)
    inference.add_argument("--short-frames", type=int, default=500)
    inference.add_argument("--long-frames", type=int, default=10_000)
    inference.add_argument("--memory-size", type=int, default=56, help="frame side (memory run)")
    inference.add_argument("--device", default=None)
    inference.add_argument("--skip-speed", action="store_true")
    inference.add_argument(
        "--levers-frames", type=int, default=100, help="frames in the speed-lever clip"
    )
    inference.add_argument("--compile", action="store_true", help="also time torch.compile")
    inference.add_argument("--skip-levers", action="store_true")
    inference.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: only the ONNX Runtime vs PyTorch engine comparison",
    )
    inference.add_argument("--skip-cache", action="store_true", help="no cached-vs-uncached run")
    inference.add_argument(
        "--online",
        action="store_true",
        help="only the online engine vs the offline one: frames/s and latency per frame",
    )
    inference.add_argument("--json", type=Path, help="also write the report here")
    training = sub.add_parser("train", help="data-wait share of step time, 2 workers reading S3")
    training.add_argument(
        "--data", help="prepared data set URI (default: synthetic on loopback S3)"
    )
    training.add_argument("--steps", type=int, default=40)
    training.add_argument("--workers", type=int, default=2)
    training.add_argument("--size", default="tiny", choices=("tiny", "vits", "vitb", "vitl"))
    training.add_argument("--side", type=int, default=112, help="clip frame side (multiple of 14)")
    training.add_argument("--json", type=Path, help="also write the report here")
    infer = sub.add_parser("infer", help="bulk job frames/s vs the bare model's")
    infer.add_argument("--videos", type=int, default=4)
    infer.add_argument("--frames", type=int, default=76)
    infer.add_argument("--side", type=int, default=224, help="video frame side")
    infer.add_argument("--size", default="vits", choices=("tiny", "vits", "vitb", "vitl"))
    infer.add_argument("--input-size", type=int, default=224)
    infer.add_argument(
        "--long", action="store_true", help="split long videos: makespan vs the ideal on N actors"
    )
    infer.add_argument("--long-frames", type=int, default=1100, help="with --long")
    infer.add_argument("--short-videos", type=int, default=3, help="with --long")
    infer.add_argument("--short-frames", type=int, default=110, help="with --long")
    infer.add_argument("--actors", type=int, default=2, help="with --long")
    infer.add_argument("--segment-frames", type=int, default=220, help="with --long")
    infer.add_argument(
        "--many",
        type=int,
        metavar="N",
        help="N short clips (--frames each) through the job: overhead per video vs the bare model",
    )
    infer.add_argument(
        "--null",
        type=int,
        metavar="N",
        help="N and N/2 videos through the job with a model that does nothing: the driver's "
        "CPU, videos/s and peak RSS per video",
    )
    infer.add_argument(
        "--stages",
        action="store_true",
        help="core-ms per frame of each stage around the model (at --width x --height)",
    )
    infer.add_argument("--width", type=int, default=960, help="with --stages")
    infer.add_argument("--height", type=int, default=540, help="with --stages")
    infer.add_argument("--json", type=Path, help="also write the report here")
    plan = sub.add_parser(
        "plan", help="planning listed videos: driver seconds and bytes per video (the slope)"
    )
    plan.add_argument(
        "--videos", type=int, default=1_000_000, help="synthetic keys, in memory only"
    )
    plan.add_argument(
        "--listed",
        type=int,
        default=100_000,
        help="objects on a loopback S3 server, planned by the real code (0: skip)",
    )
    plan.add_argument("--json", type=Path, help="also write the report here")


def run(args: argparse.Namespace) -> int:
    if args.bench == "inference":
        from vda.platform.bench.engine_speed import run_inference_bench

        report = run_inference_bench(
            size=args.size,
            frames=args.frames,
            height=args.height,
            width=args.width,
            input_size=args.input_size,
            short_frames=args.short_frames,
            long_frames=args.long_frames,
            memory_size=args.memory_size,
            device=args.device,
            skip_speed=args.skip_speed,
            levers_frames=args.levers_frames,
            compile=args.compile,
            skip_levers=args.skip_levers,
            skip_cache=args.skip_cache,
            engine=args.engine,
            online=args.online,
        )
    elif args.bench == "train":
        from vda.platform.bench.train_data_wait import run_train_bench

        report = run_train_bench(args.data, args.steps, args.workers, args.size, args.side)
    elif args.bench == "infer" and args.long:
        from vda.platform.bench.bulk_throughput import run_split_bench

        report = run_split_bench(
            args.long_frames,
            args.short_videos,
            args.short_frames,
            args.actors,
            args.side,
            args.size,
            args.input_size,
            args.segment_frames,
        )
    elif args.bench == "infer" and args.many:
        from vda.platform.bench.bulk_overhead import run_many_bench

        report = run_many_bench(args.many, args.frames, args.side, args.size, args.input_size)
    elif args.bench == "infer" and args.null:
        from vda.platform.bench.driver_scale import run_driver_bench

        report = run_driver_bench(args.null)
    elif args.bench == "infer" and args.stages:
        from vda.platform.bench.bulk_stages import run_stage_bench

        report = run_stage_bench(args.frames, args.width, args.height, 518)
    elif args.bench == "plan":
        from vda.platform.bench.plan_scale import run_plan_bench

        report = run_plan_bench(args.videos, args.listed)
    elif args.bench == "infer":
        from vda.platform.bench.bulk_throughput import run_infer_bench

        report = run_infer_bench(args.videos, args.frames, args.side, args.size, args.input_size)
    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(args.bench)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
