"""`vda depth`: depth for local videos on this machine, with a progress bar.

The single-machine path of the same engine and writers that the bulk job
(`vda infer`) runs on a cluster. With `--online SOURCE`: the official online
mode over a camera, a stream or a file (`vda.platform.online`), same writers.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from vda.model.checkpoint import file_sha256
from vda.model.inference import (
    InferenceConfig,
    SpeedOptions,
    StreamingDepthEngine,
    WindowConfig,
)
from vda.platform.core.config import ConfigError
from vda.platform.video import (
    DecodeOptions,
    DepthOutputs,
    OutputOptions,
    VideoDecodeError,
    open_video,
)
from vda.platform.video.metadata import run_metadata
from vda.platform.video.pointcloud import Intrinsics, sidecar_intrinsics
from vda.platform.video.process import depth_for_video
from vda.platform.video.scenes import SceneCutOptions
from vda.platform.weights import Weights, read_weights
from vda.platform.weights.hub import released


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "videos",
        nargs="*",
        type=Path,
        help="video files, or folders of numbered images (PNG, JPEG, TIFF, EXR) as one video each",
    )
    parser.add_argument(
        "--online",
        metavar="SOURCE",
        help="online depth of one live source instead: a camera index (0), an rtsp:// or "
        "http(s):// stream, or a video file; each frame's depth before the next frame is read "
        "(the official online mode; docs/depth.md says how it differs from the default)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="with --online and a file: play it at its frame rate and drop the frames the model "
        "cannot keep up with, as a camera would deliver them",
    )
    parser.add_argument(
        "--queue-frames",
        type=int,
        default=1,
        help="with --online: frames that may wait for the model; beyond them the oldest is dropped",
    )
    parser.add_argument(
        "--serve-preview",
        metavar="[HOST:]PORT",
        help="with --online: the live depth as MJPEG over HTTP (default host 127.0.0.1)",
    )
    parser.add_argument(
        "--sequence-fps",
        type=float,
        default=None,
        help="frame rate of image-sequence folders (else their sequence.json, else 24)",
    )
    parser.add_argument(
        "--checkpoint",
        default="vits",
        help="a released model by name (vits, vitb, vitl, metric-vits, metric-vitb, metric-vitl; "
        "fetched once into the Hugging Face cache; default vits, Apache-2.0), or an official "
        "VDA or vda checkpoint file, local or s3:// (with --engine onnx: NAME.onnx from "
        "`vda export`)",
    )
    parser.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: the same windowing on ONNX Runtime (CPU; CUDA/TensorRT providers if present)",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs"), help="output folder")
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--max-res", type=int, default=1280)
    parser.add_argument("--max-len", type=int, default=-1)
    parser.add_argument("--target-fps", type=float, default=-1)
    parser.add_argument("--fp32", action="store_true", help="no autocast on GPU")
    parser.add_argument("--precision", choices=("fp16", "bf16"), default="fp16")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if any)")
    parser.add_argument("--no-cache", action="store_true", help="re-encode context frames")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the network (pays on long videos)"
    )
    parser.add_argument(
        "--baseline-engine",
        action="store_true",
        help="no speed levers: the engine as first built (to compare or rule them out)",
    )
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--chunk-frames", type=int, default=256)
    parser.add_argument(
        "--depth-dtype",
        default="float16",
        choices=("float16", "float32"),
        help="depth arrays' type (float32: exact, twice the bytes)",
    )
    parser.add_argument("--png16", action="store_true", help="also write 16-bit PNG frames")
    parser.add_argument("--exr", action="store_true", help="also OpenEXR depth per frame (Z)")
    parser.add_argument("--exr-half", action="store_true", help="EXR in half floats")
    parser.add_argument(
        "--ply", action="store_true", help="coloured point clouds (metric checkpoints)"
    )
    parser.add_argument("--ply-every", type=int, default=10, help="a point cloud every N frames")
    parser.add_argument("--focal-length-x", type=float, help="pixels, source video")
    parser.add_argument("--focal-length-y", type=float, help="pixels, source video")
    parser.add_argument("--principal-x", type=float, help="default: image centre")
    parser.add_argument("--principal-y", type=float, help="default: image centre")
    parser.add_argument(
        "--scene-cuts",
        action="store_true",
        help="restart the window chain at each detected cut (PySceneDetect ContentDetector)",
    )
    parser.add_argument("--scene-threshold", type=float, default=27.0)
    parser.add_argument("--no-preview", action="store_true")
    parser.add_argument("--grayscale", action="store_true", help="also a grayscale preview")
    parser.add_argument("--side-by-side", action="store_true", help="also an RGB | depth video")


def announced_weights(checkpoint: str) -> Weights:
    """A released name, a path or an s3:// URI, read and hashed as every job reads them; a
    released model's license is printed before any work starts."""
    weights = read_weights(checkpoint)
    if weights.license:
        print(f"checkpoint {checkpoint} = {weights.source}: license {released(checkpoint).terms}")
    return weights


def output_options(args: argparse.Namespace) -> OutputOptions:
    """What `vda depth` writes per video, online or not."""
    return OutputOptions(
        chunk_frames=args.chunk_frames,
        depth_dtype=args.depth_dtype,
        png16=args.png16,
        exr=args.exr,
        exr_half=args.exr_half,
        ply=args.ply,
        ply_every=args.ply_every,
        focal_length_x=args.focal_length_x,
        focal_length_y=args.focal_length_y,
        principal_x=args.principal_x,
        principal_y=args.principal_y,
        preview=not args.no_preview,
        grayscale=args.grayscale,
        side_by_side=args.side_by_side,
    )


def run(args: argparse.Namespace) -> int:
    if args.online is not None:
        return run_online(args)
    if not args.videos:
        raise ConfigError("name at least one video (or a live source with --online SOURCE)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.engine == "onnx":
        from vda.model.onnx_runtime import OnnxNetwork

        model = OnnxNetwork(args.checkpoint, device)
        checkpoint_hash, source, license = file_sha256(args.checkpoint), args.checkpoint, None
    else:
        weights = announced_weights(args.checkpoint)
        model, checkpoint_hash = weights.load_model(), weights.sha256
        source, license = weights.source, weights.license
    config = InferenceConfig(
        window=WindowConfig(length=args.window),
        input_size=args.input_size,
        precision="fp32" if args.fp32 else args.precision,
        cache_encoder=not args.no_cache,
        speed=SpeedOptions.baseline() if args.baseline_engine else SpeedOptions(),
    )
    config.speed.compile = args.compile
    engine_device = "cpu" if args.engine == "onnx" else device  # ORT picks its own device
    engine = StreamingDepthEngine(model, config, device=engine_device)
    decode = DecodeOptions(max_res=args.max_res, target_fps=args.target_fps, max_len=args.max_len)
    outputs = output_options(args)
    failures = 0
    for video in args.videos:
        try:
            with open_video(video, decode, sequence_fps=args.sequence_fps) as reader:
                folder = args.output / (video.name if video.is_dir() else video.stem)
                total = reader.frame_count_estimate
                sidecar = sidecar_intrinsics(video)
                intrinsics = Intrinsics.from_sidecar(sidecar) if sidecar.exists() else None
                depth_outputs = DepthOutputs(
                    folder, reader.info, outputs, metric=model.config.metric, intrinsics=intrinsics
                )
                with tqdm(total=total, desc=video.name, unit="frame") as bar:
                    result = depth_for_video(
                        engine,
                        reader.frames(),
                        depth_outputs,
                        metadata=lambda: run_metadata(
                            model_size=model.config.size,
                            metric=model.config.metric,
                            checkpoint=args.checkpoint,
                            checkpoint_sha256=checkpoint_hash,
                            input_size=args.input_size,
                            precision=engine.precision,  # what ran, not what was asked
                            device=str(engine.device),
                            max_res=args.max_res,
                            target_fps=args.target_fps,
                            max_len=args.max_len,
                            window=args.window,
                            speed=config.speed,
                            alignments=engine.alignments,
                            engine=args.engine,
                            checkpoint_source=source,
                            checkpoint_license=license,
                        ),
                        on_frame=lambda _: bar.update(1),
                        scene_cuts=SceneCutOptions(args.scene_cuts, args.scene_threshold),
                    )
            print(f"{video}: {result.frames} frames in {result.seconds:.1f} s -> {folder}")
        except (VideoDecodeError, ValueError) as error:  # a bad video, sidecar or option
            failures += 1
            print(f"{video}: FAILED: {error}", file=sys.stderr)
    return 1 if failures else 0


def run_online(args: argparse.Namespace) -> int:
    """`vda depth --online SOURCE`: one live source, depth per frame, latency at the end."""
    from vda.model.inference import OnlineDepthEngine
    from vda.platform.online import MjpegPreview, OnlineStream
    from vda.platform.online.job import write_online
    from vda.platform.video.live import LiveSource

    if args.videos:
        raise ConfigError("--online takes one source; name videos without it")
    offline_only = {
        "--engine onnx": args.engine != "torch",
        "--scene-cuts": args.scene_cuts,
        "--no-cache": args.no_cache,
        "--compile": args.compile,
        "--baseline-engine": args.baseline_engine,
    }
    if any(offline_only.values()):
        raise ConfigError(
            f"--online runs the PyTorch network one frame at a time, without "
            f"{', '.join(flag for flag, given in offline_only.items() if given)} (they are the "
            "offline engine's: ONNX exports have no temporal cache, there is no window chain)"
        )
    preview_at = None
    if args.serve_preview:
        host, _, port = args.serve_preview.rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"--serve-preview takes [HOST:]PORT, got {args.serve_preview!r}")
        preview_at = (host or "127.0.0.1", int(port))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    weights = announced_weights(args.checkpoint)
    model = weights.load_model()
    precision = "fp32" if args.fp32 else args.precision
    engine = OnlineDepthEngine(
        model, args.input_size, precision, device, WindowConfig(length=args.window)
    )
    decode = DecodeOptions(max_res=args.max_res, target_fps=args.target_fps, max_len=args.max_len)
    with contextlib.ExitStack() as resources:  # whatever started is stopped, on any error
        preview = None
        if preview_at is not None:
            preview = resources.enter_context(
                MjpegPreview(preview_at[1], preview_at[0], metric=model.config.metric)
            )
            print(f"live depth at {preview.url}", flush=True)
        source = resources.enter_context(
            LiveSource(args.online, decode, args.realtime or None, args.queue_frames)
        )
        stream = OnlineStream(engine, source, weights)
        folder = args.output / source.info.name
        outputs = DepthOutputs(
            folder, source.info, output_options(args), metric=model.config.metric
        )

        def metadata() -> dict:
            return run_metadata(
                model_size=model.config.size,
                metric=model.config.metric,
                checkpoint=args.checkpoint,
                checkpoint_sha256=weights.sha256,
                input_size=args.input_size,
                precision=engine.precision,
                device=str(engine.device),
                max_res=args.max_res,
                target_fps=args.target_fps,
                max_len=args.max_len,
                window=args.window,
                speed={},
                alignments=[],
                checkpoint_source=weights.source,
                checkpoint_license=weights.license,
                mode="online",
                online={
                    "source": source.display,
                    "kind": source.kind,
                    "realtime": source.realtime,
                    "queue_frames": args.queue_frames,
                    "read": source.read,
                    "dropped": source.dropped,
                    "ended_by": source.ended_by,
                    **stream.latency.summary(),
                },
            )

        total = None if source.realtime else source.info.frame_count_hint  # drops: unknown
        with tqdm(total=total, desc=source.info.name, unit="frame") as bar:
            result = write_online(stream, outputs, metadata, preview, lambda _: bar.update(1))
    latency = stream.latency
    if source.ended_by:
        print(f"{source.display}: the source ended early: {source.ended_by}", file=sys.stderr)
    print(
        f"{source.display}: {result.frames} frames, {source.dropped} dropped, latency p50 "
        f"{latency.percentile_ms(50):.0f} ms / p95 {latency.percentile_ms(95):.0f} ms, "
        f"{latency.fps:.1f} frames/s -> {folder}"
    )
    return 0
