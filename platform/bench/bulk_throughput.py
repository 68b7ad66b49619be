"""`vda bench infer`: the bulk job against the bare model, and split long videos against the ideal.

Same machine, same run, same videos, same weights (random vits weights in
the official layout: speed does not depend on their values), videos in an S3
server on loopback.

- default: the streaming engine alone on frames decoded beforehand (the
  model's own frames/s), then `vda infer` end to end with the writers beside
  the model (`writer.background`, the default) and, for the record, with them
  inline on the model's thread as before;
- `--long`: an archive of one long and several short videos on N actors,
  without and with `split.segment_frames`; the ideal is the total per-video
  work of the unsplit run divided by N. Makespan is the job's wall time.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from pathlib import Path

from ..core.session import start_ray
from .loopback import loopback_s3
from .machine import describe_machine


def _archive(root: Path, bucket: str, lengths: list[int], side: int, size: str):
    """Synthetic videos and an official-layout checkpoint in the loopback S3; returns
    (checkpoint path, decoded frames per video)."""
    import boto3
    import torch

    from vda.model import ModelConfig, VideoDepthAnything, export_official

    from ..data.synthetic import SyntheticConfig, SyntheticScene
    from ..video import open_video
    from ..video.writers import write_video

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    torch.manual_seed(0)
    checkpoint = root / f"video_depth_anything_{size}.pth"
    export_official(VideoDepthAnything(ModelConfig(size=size)), checkpoint)
    s3.upload_file(str(checkpoint), bucket, f"models/{checkpoint.name}")
    decoded = []
    for index, frames in enumerate(lengths):
        scene = SyntheticScene(SyntheticConfig(frames=frames, height=side, width=side), index)
        path = write_video(root / f"v{index}.mp4", (f.rgb for f in scene.frames()), fps=24)
        s3.upload_file(str(path), bucket, f"videos/v{index}.mp4")
        with open_video(path) as reader:
            decoded.append(list(reader.frames()))
    return checkpoint, decoded


def _config(bucket: str, root: Path, checkpoint: Path, input_size: int, output: str, **extra):
    from ..core.config import build
    from ..infer.config import InferConfig

    return build(
        InferConfig,
        {
            "input": f"s3://{bucket}/videos",
            "output": f"s3://{bucket}/{output}",
            "checkpoint": f"s3://{bucket}/models/{checkpoint.name}",
            "input_size": input_size,
            "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db", "experiment": "bench"},
            "progress_s": 3600,
            **extra,
        },
    )


def run_infer_bench(videos: int, frames: int, side: int, size: str, input_size: int) -> dict:
    import ray

    from vda.model import load_checkpoint
    from vda.model.inference import InferenceConfig, StreamingDepthEngine

    from ..infer.job import run_infer

    print(f"machine: {describe_machine()}", flush=True)
    with tempfile.TemporaryDirectory() as folder, loopback_s3():
        root = Path(folder)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        checkpoint, decoded = _archive(root, bucket, [frames] * videos, side, size)
        engine = StreamingDepthEngine(
            load_checkpoint(io.BytesIO(checkpoint.read_bytes())),
            InferenceConfig(input_size=input_size),
        )
        list(engine.run(iter(decoded[0][: 32 + 22])))  # warm-up: every tensor shape once
        start = time.perf_counter()
        for video in decoded:
            for _ in engine.run(iter(video)):
                pass
        bare_fps = videos * frames / (time.perf_counter() - start)
        del engine

        start_ray(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
        )
        # one actor, one CPU reserved (the rest stays free for Ray), but torch uses
        # every core, as the bare model does
        actors = {"num_actors": 1, "cpus_per_actor": 1, "torch_threads": os.cpu_count()}
        report: dict = {"bare_fps": bare_fps, "machine": describe_machine()}
        # the same videos in a local folder: the loopback S3 server is a Python process on
        # the same cores as the model, which a real object store is not
        local = root / "local-videos"
        local.mkdir()
        for index in range(videos):
            (root / f"v{index}.mp4").rename(local / f"v{index}.mp4")
        variants = {"overlapped": (True, True), "inline": (True, False), "local": (False, True)}
        for name, (on_s3, background) in variants.items():
            config = _config(
                bucket,
                root,
                checkpoint,
                input_size,
                f"depth-{name}",
                actors=actors,
                writer={"background": background},
            )
            if not on_s3:
                config.input, config.output = str(local), str(root / "depth-local")
            result = run_infer(config, progress=lambda _: None)
            processing = sum(r.seconds for r in result.rows if r.processed and r.status == "done")
            report[name] = {
                "job_fps": result.frames / result.seconds,
                "ratio": result.frames / result.seconds / bare_fps,
                "processing_fps": result.frames / processing,
                "processing_ratio": result.frames / processing / bare_fps,
                "done": result.count("done"),
            }
        ray.shutdown()
    labels = {
        "overlapped": "S3 on loopback, writers beside the model",
        "inline": "S3 on loopback, writers inline",
        "local": "local folders, writers beside the model",
    }
    for name, label in labels.items():
        r = report[name]
        print(
            f"bulk job, {label} ({videos} videos x {frames} frames, {side}x{side}, {size} "
            f"at input {input_size}): end to end {r['job_fps']:.3f} frames/s vs bare model "
            f"{bare_fps:.3f}: ratio {r['ratio']:.3f}x (target >= 0.9x); per-video processing "
            f"alone {r['processing_fps']:.3f} frames/s ({r['processing_ratio']:.3f}x)",
            flush=True,
        )
    return report


def run_split_bench(
    long_frames: int,
    short_videos: int,
    short_frames: int,
    actors: int,
    side: int,
    size: str,
    input_size: int,
    segment_frames: int,
) -> dict:
    import ray

    from ..infer.job import run_infer

    print(f"machine: {describe_machine()}", flush=True)
    with tempfile.TemporaryDirectory() as folder, loopback_s3():
        root = Path(folder)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        lengths = [long_frames] + [short_frames] * short_videos
        checkpoint, _ = _archive(root, bucket, lengths, side, size)
        cpus = os.cpu_count() or 1
        start_ray(
            num_cpus=cpus,
            include_dashboard=False,
        )
        share = max(0.25, (cpus - 0.5) / actors)  # actors side by side, a little CPU left over
        pool = {
            "num_actors": actors,
            "cpus_per_actor": share,
            "torch_threads": max(1, cpus // actors),
        }
        runs = {}
        for name, split in (("whole", 0), ("split", segment_frames)):
            config = _config(
                bucket,
                root,
                checkpoint,
                input_size,
                f"depth-{name}",
                actors=pool,
                split={"segment_frames": split},
                outputs={"preview": False},
            )
            result = run_infer(config, progress=lambda _: None)
            work = sum(r.seconds for r in result.rows if r.status == "done")
            runs[name] = {
                "makespan_s": result.scheduled_seconds,  # from actor start to the last commit
                "job_s": result.seconds,  # plus listing, checks, manifest, MLflow
                "startup_s": result.startup_seconds,  # actors loading the model
                "work_s": work,
                "done": result.count("done"),
            }
        ray.shutdown()
    ideal = runs["whole"]["work_s"] / actors
    report = {
        "machine": describe_machine(),
        "ideal_s": ideal,
        **{f"{k}_{m}": v for k, run in runs.items() for m, v in run.items()},
        "whole_vs_ideal": runs["whole"]["makespan_s"] / ideal,
        "split_vs_ideal": runs["split"]["makespan_s"] / ideal,
        "split_after_startup_vs_ideal": (runs["split"]["makespan_s"] - runs["split"]["startup_s"])
        / ideal,
        "speedup": runs["whole"]["makespan_s"] / runs["split"]["makespan_s"],
    }
    print(
        f"split bench (1 x {long_frames} + {short_videos} x {short_frames} frames, {side}x{side}, "
        f"{size} at input {input_size}, {actors} actors, segment_frames {segment_frames}): "
        f"makespan without split {runs['whole']['makespan_s']:.1f} s "
        f"({report['whole_vs_ideal']:.2f}x ideal), with split {runs['split']['makespan_s']:.1f} s "
        f"({report['split_vs_ideal']:.2f}x ideal; target <= 1.2x; "
        f"{report['split_after_startup_vs_ideal']:.2f}x without the "
        f"{runs['split']['startup_s']:.1f} s of model loading); ideal (work / N) {ideal:.1f} s; "
        f"split speed-up {report['speedup']:.2f}x (makespan: actor start to last commit; whole "
        f"jobs {runs['whole']['job_s']:.1f} s and {runs['split']['job_s']:.1f} s)",
        flush=True,
    )
    return report
