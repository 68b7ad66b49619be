"""`vda bench infer`: the bulk job's end-to-end frames/s against the bare model's.

Same machine, same run, same videos, same weights: first the streaming engine
alone on frames decoded beforehand (the model's own frames/s), then `vda
infer` end to end on those videos in an S3 server on loopback (listing, actor
start-up, decoding from S3, inference, uploads, commits). Random vits weights
in the official layout: speed does not depend on their values.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from .loopback import loopback_s3
from .machine import describe_machine


def run_infer_bench(videos: int, frames: int, side: int, size: str, input_size: int) -> dict:
    import boto3
    import ray
    import torch

    from vda.model import ModelConfig, VideoDepthAnything, export_official, load_checkpoint
    from vda.model.inference import InferenceConfig, StreamingDepthEngine

    from ..core.config import build
    from ..data.synthetic import SyntheticConfig, SyntheticScene
    from ..infer.config import InferConfig
    from ..infer.job import run_infer
    from ..video import open_video
    from ..video.writers import write_video

    print(f"machine: {describe_machine()}", flush=True)
    with tempfile.TemporaryDirectory() as folder, loopback_s3():
        root = Path(folder)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        torch.manual_seed(0)
        checkpoint = root / f"video_depth_anything_{size}.pth"
        export_official(VideoDepthAnything(ModelConfig(size=size)), checkpoint)
        s3.upload_file(str(checkpoint), bucket, f"models/{checkpoint.name}")
        decoded = []
        for index in range(videos):
            scene = SyntheticScene(SyntheticConfig(frames=frames, height=side, width=side), index)
            path = write_video(root / f"v{index}.mp4", (f.rgb for f in scene.frames()), fps=24)
            s3.upload_file(str(path), bucket, f"videos/v{index}.mp4")
            with open_video(path) as reader:
                decoded.append(list(reader.frames()))

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

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        config = build(
            InferConfig,
            {
                "input": f"s3://{bucket}/videos",
                "output": f"s3://{bucket}/depth",
                "checkpoint": f"s3://{bucket}/models/{checkpoint.name}",
                "input_size": input_size,
                # one actor, one CPU reserved (the rest stays free for Ray), but torch
                # uses every core, as the bare model does
                "actors": {"num_actors": 1, "cpus_per_actor": 1, "torch_threads": os.cpu_count()},
                "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db", "experiment": "bench"},
            },
        )
        result = run_infer(config, progress=lambda _: None)
        ray.shutdown()
    job_fps = result.frames / result.seconds
    processing = sum(row["seconds"] for row in result.rows if row["status"] == "done")
    print(
        f"bulk job ({videos} videos x {frames} frames, {side}x{side}, {size} at input {input_size}): "
        f"end to end {job_fps:.3f} frames/s vs bare model {bare_fps:.3f} frames/s: "
        f"ratio {job_fps / bare_fps:.3f}x (target >= 0.9x); per-video processing alone "
        f"{result.frames / processing:.3f} frames/s ({result.frames / processing / bare_fps:.3f}x)",
        flush=True,
    )
    return {
        "bare_fps": bare_fps,
        "job_fps": job_fps,
        "ratio": job_fps / bare_fps,
        "processing_fps": result.frames / processing,
        "frames": result.frames,
        "done": result.count("done"),
        "seconds": float(np.round(result.seconds, 2)),
    }
