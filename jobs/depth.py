"""`vda depth`: depth for local videos on this machine, with a progress bar.

The single-machine path of the same engine and writers that the bulk job
(`vda infer`) runs on a cluster. With `--online SOURCE`: the official online
mode over a camera, a stream or a file (`vda.platform.online`), same writers.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from vda.model.checkpoint import file_sha256
from vda.model.config import ModelConfig
from vda.model.inference import (
    InferenceConfig,
    OnlineDepthEngine,
    SpeedOptions,
    StreamingDepthEngine,
    WindowConfig,
)
from vda.model.precision import pick_device
from vda.platform.video import DepthOutputs, VideoDecodeError, open_video
from vda.platform.video.depth_config import DepthConfig
from vda.platform.video.metadata import run_metadata
from vda.platform.video.pointcloud import Intrinsics, sidecar_intrinsics
from vda.platform.video.process import depth_for_video
from vda.platform.weights import Weights, read_weights
from vda.platform.weights.hub import released

from .options import print_config, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="VIDEO|key=value",
        help="video files, or folders of numbered images (PNG, JPEG, TIFF, EXR) as one video "
        "each (key: videos); arguments of the form key=value are config overrides",
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
        default=None,
        help="with --online and a file: play it at its frame rate and drop the frames the model "
        "cannot keep up with, as a camera would deliver them",
    )
    parser.add_argument(
        "--queue-frames",
        type=int,
        help="with --online: frames that may wait for the model; beyond them the oldest is "
        "dropped (default 1)",
    )
    parser.add_argument(
        "--serve-preview",
        metavar="[HOST:]PORT",
        help="with --online: the live depth as MJPEG over HTTP (default host 127.0.0.1)",
    )
    parser.add_argument(
        "--sequence-fps",
        type=float,
        help="frame rate of image-sequence folders (else their sequence.json, else 24)",
    )
    parser.add_argument(
        "--checkpoint",
        help="a released model by name (vits, vitb, vitl, metric-vits, metric-vitb, metric-vitl; "
        "fetched once into the Hugging Face cache; default vits, Apache-2.0), or an official "
        "VDA or vda checkpoint file, local or s3:// (with --engine onnx: NAME.onnx from "
        "`vda export`)",
    )
    parser.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        help="onnx: the same windowing on ONNX Runtime (CPU; CUDA/TensorRT providers if present)",
    )
    parser.add_argument("-o", "--output", type=str, help="output folder (default outputs)")
    parser.add_argument("--input-size", type=int, help="default 518")
    parser.add_argument("--max-res", type=int, help="default 1280")
    parser.add_argument("--max-len", type=int, help="default -1: every frame")
    parser.add_argument("--target-fps", type=float, help="default -1: the source's rate")
    parser.add_argument("--fp32", action="store_true", help="no autocast on GPU")
    parser.add_argument(
        "--precision", choices=("fp16", "bf16"), help="autocast type on GPU (default fp16)"
    )
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if any)")
    parser.add_argument("--no-cache", action="store_true", help="re-encode context frames")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the network (pays on long videos)"
    )
    parser.add_argument(
        "--baseline-engine",
        action="store_true",
        help="no speed levers: the engine as first built (to compare or rule them out)",
    )
    parser.add_argument("--window", type=int, help="default 32")
    parser.add_argument("--chunk-frames", type=int, help="default 256")
    parser.add_argument(
        "--depth-dtype",
        choices=("float16", "float32"),
        help="depth arrays' type (default float16; float32: exact, twice the bytes)",
    )
    parser.add_argument("--png16", action="store_true", help="also write 16-bit PNG frames")
    parser.add_argument("--exr", action="store_true", help="also OpenEXR depth per frame (Z)")
    parser.add_argument("--exr-half", action="store_true", help="EXR in half floats")
    parser.add_argument(
        "--ply", action="store_true", help="coloured point clouds (metric checkpoints)"
    )
    parser.add_argument("--ply-every", type=int, help="a point cloud every N frames (default 10)")
    parser.add_argument("--focal-length-x", type=float, help="pixels, source video")
    parser.add_argument("--focal-length-y", type=float, help="pixels, source video")
    parser.add_argument("--principal-x", type=float, help="default: image centre")
    parser.add_argument("--principal-y", type=float, help="default: image centre")
    parser.add_argument(
        "--scene-cuts",
        action="store_true",
        help="restart the window chain at each detected cut (PySceneDetect ContentDetector)",
    )
    parser.add_argument("--scene-threshold", type=float, help="default 27")
    parser.add_argument("--no-preview", action="store_true")
    parser.add_argument("--grayscale", action="store_true", help="also a grayscale preview")
    parser.add_argument("--side-by-side", action="store_true", help="also an RGB | depth video")
    parser.add_argument("--config", help="YAML config file (keys: `vda depth --print-config`)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )


# each flag is a shorthand for one key: (flag's dest, key, value when the flag is a switch)
FLAG_KEYS: tuple[tuple[str, str, object], ...] = (
    ("online", "online.source", None),
    ("realtime", "online.realtime", None),
    ("queue_frames", "online.queue_frames", None),
    ("serve_preview", "online.serve_preview", None),
    ("sequence_fps", "sequence_fps", None),
    ("checkpoint", "checkpoint", None),
    ("engine", "engine", None),
    ("output", "output", None),
    ("input_size", "input_size", None),
    ("max_res", "decode.max_res", None),
    ("max_len", "decode.max_len", None),
    ("target_fps", "decode.target_fps", None),
    ("precision", "precision", None),
    ("fp32", "precision", "fp32"),
    ("device", "device", None),
    ("no_cache", "cache_encoder", False),
    ("compile", "speed.compile", True),
    ("window", "window", None),
    ("chunk_frames", "outputs.chunk_frames", None),
    ("depth_dtype", "outputs.depth_dtype", None),
    ("png16", "outputs.png16", True),
    ("exr", "outputs.exr", True),
    ("exr_half", "outputs.exr_half", True),
    ("ply", "outputs.ply", True),
    ("ply_every", "outputs.ply_every", None),
    ("focal_length_x", "outputs.focal_length_x", None),
    ("focal_length_y", "outputs.focal_length_y", None),
    ("principal_x", "outputs.principal_x", None),
    ("principal_y", "outputs.principal_y", None),
    ("scene_cuts", "scene_cuts.enabled", True),
    ("scene_threshold", "scene_cuts.threshold", None),
    ("no_preview", "outputs.preview", False),
    ("grayscale", "outputs.grayscale", True),
    ("side_by_side", "outputs.side_by_side", True),
)
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")  # key=value; a path like ./a=b.mp4 is a video


def depth_config(args: argparse.Namespace) -> DepthConfig:
    """Defaults <- --config <- flags given <- key=value overrides, built and checked as
    every job's config is. Switches (--png16, --no-cache ...) set their key only when given."""
    overrides = [item for item in args.inputs if OVERRIDE.match(item)]
    videos = [item for item in args.inputs if not OVERRIDE.match(item)]
    flags: dict[str, object] = {"videos": videos or None}
    if args.baseline_engine:  # a whole section: each of its keys (--compile may follow)
        flags |= {f"speed.{name}": v for name, v in asdict(SpeedOptions.baseline()).items()}
    for dest, key, switch_value in FLAG_KEYS:
        given = getattr(args, dest)
        if switch_value is None:
            if given is not None:
                flags[key] = given
        elif given:
            flags[key] = switch_value
    args.overrides = overrides
    return resolve_config(DepthConfig, args, flags)


def announced_weights(checkpoint: str) -> Weights:
    """A released name, a path or an s3:// URI, read and hashed as every job reads them; a
    released model's license is printed before any work starts."""
    weights = read_weights(checkpoint)
    if weights.license:
        print(f"checkpoint {checkpoint} = {weights.source}: license {released(checkpoint).terms}")
    return weights


def run(args: argparse.Namespace) -> int:
    config = depth_config(args)
    if args.print_config:
        print_config(config)
        return 0
    if config.online.source is not None:
        return run_online(config)
    device = pick_device(config.device)
    if config.engine == "onnx":
        from vda.model.onnx_runtime import OnnxNetwork

        model = OnnxNetwork(config.checkpoint, device)
        checkpoint = Checkpoint(config.checkpoint, file_sha256(config.checkpoint))
        device = "cpu"  # ONNX Runtime picks its own device; the windows are prepared on CPU
    else:
        weights = announced_weights(config.checkpoint)
        model = weights.load_model()
        checkpoint = Checkpoint(weights.source, weights.sha256, weights.license)
    inference = InferenceConfig(
        window=WindowConfig(length=config.window),
        input_size=config.input_size,
        precision=config.precision,
        cache_encoder=config.cache_encoder,
        speed=config.speed,
    )
    engine = StreamingDepthEngine(model, inference, device=device)
    failures = 0
    for video in map(Path, config.videos):
        try:
            with open_video(video, config.decode, sequence_fps=config.sequence_fps) as reader:
                folder = Path(config.output) / (video.name if video.is_dir() else video.stem)
                sidecar = sidecar_intrinsics(video)
                intrinsics = Intrinsics.from_sidecar(sidecar) if sidecar.exists() else None
                metric = model.config.metric
                outputs = DepthOutputs(
                    folder, reader.info, config.outputs, metric=metric, intrinsics=intrinsics
                )
                with tqdm(total=reader.frame_count_estimate, desc=video.name, unit="frame") as bar:
                    result = depth_for_video(
                        engine,
                        reader.frames(),
                        outputs,
                        metadata=lambda: depth_metadata(
                            config, model.config, checkpoint, engine, engine.alignments
                        ),
                        on_frame=lambda _: bar.update(1),
                        scene_cuts=config.scene_cuts,
                    )
            print(f"{video}: {result.frames} frames in {result.seconds:.1f} s -> {folder}")
        except (VideoDecodeError, ValueError) as error:  # a bad video, sidecar or option
            failures += 1
            print(f"{video}: FAILED: {error}", file=sys.stderr)
    return 1 if failures else 0


@dataclass
class Checkpoint:
    """The checkpoint file a run read, for its metadata."""

    source: str
    sha256: str
    license: str | None = None


def depth_metadata(
    config: DepthConfig,
    model: ModelConfig,
    checkpoint: Checkpoint,
    engine: StreamingDepthEngine | OnlineDepthEngine,
    alignments: list,
    **online: object,
) -> dict:
    """What ran (`precision` and `device` as computed, not as asked), for metadata.json."""
    return run_metadata(
        model_size=model.size,
        metric=model.metric,
        checkpoint=config.checkpoint,
        checkpoint_sha256=checkpoint.sha256,
        input_size=config.input_size,
        precision=engine.precision,
        device=str(engine.device),
        max_res=config.decode.max_res,
        target_fps=config.decode.target_fps,
        max_len=config.decode.max_len,
        window=config.window,
        speed=config.speed if not online else {},
        alignments=alignments,
        engine=config.engine,
        checkpoint_source=checkpoint.source,
        checkpoint_license=checkpoint.license,
        mode="online" if online else "offline",
        **online,
    )


def run_online(config: DepthConfig) -> int:
    """`vda depth --online SOURCE`: one live source, depth per frame, latency at the end."""
    from vda.platform.online import MjpegPreview
    from vda.platform.online.job import write_online
    from vda.platform.online.stream import online

    options = config.online
    weights = announced_weights(config.checkpoint)
    checkpoint = Checkpoint(weights.source, weights.sha256, weights.license)
    with contextlib.ExitStack() as resources:  # whatever started is stopped, on any error
        stream = resources.enter_context(
            online(
                options.source,
                weights,
                device=config.device,
                input_size=config.input_size,
                precision=config.precision,
                max_res=config.decode.max_res,
                target_fps=config.decode.target_fps,
                max_len=config.decode.max_len,
                window=config.window,
                realtime=options.realtime or None,
                queue_frames=options.queue_frames,
            )
        )
        model, source = stream.engine.model.config, stream.source
        preview = None
        if (address := options.preview_address()) is not None:
            preview = resources.enter_context(
                MjpegPreview(address[1], address[0], metric=model.metric)
            )
            print(f"live depth at {preview.url}", flush=True)
        folder = Path(config.output) / source.info.name
        outputs = DepthOutputs(folder, source.info, config.outputs, metric=model.metric)

        def metadata() -> dict:
            live = {
                "source": source.display,
                "kind": source.kind,
                "realtime": source.realtime,
                "queue_frames": options.queue_frames,
                "read": source.read,
                "dropped": source.dropped,
                "ended_by": source.ended_by,
                **stream.latency.summary(),
            }
            return depth_metadata(config, model, checkpoint, stream.engine, [], online=live)

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
