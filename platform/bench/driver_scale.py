"""`vda bench infer --null N`: the driver's own cost per video, with a model that does nothing.

Everything but the model is real: N empty input files are listed and
planned, dispatched to one actor (`actors.units_in_flight` calls at a time,
short videos several to a call: `actors.batch_s`),
committed by it (the lease check, `_SUCCESS.json`, the create-only durable
row), merged into part files by the driver and compacted into the
manifest; the actor commits each video at once (`fault.null_model`), so the
job around the model is all there is. Each size runs in a fresh process, at
N/2 and N: the driver's CPU time per video (every thread of its process,
Ray's included, from the plan to the manifest), the videos per second one
driver sustains (after its actor is ready), and the slope of its peak RSS
per video. Targets: <= 1 core-ms and <= 300 bytes per video.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .machine import describe_machine
from .scaling import in_child, peak_rss_mb, slope


def run_driver_bench(videos: int) -> dict:
    print(f"machine: {describe_machine()}", flush=True)
    runs = [
        in_child("driver_scale", [str(n)], f"the null-model job of {n}")
        for n in (videos // 2, videos)
    ]
    report = {"machine": describe_machine(), **slope(runs)}
    small, large = runs
    report["cpu_ms_per_video"] = (large["cpu_s"] - small["cpu_s"]) * 1e3 / (videos - videos // 2)
    for run in runs:
        print(
            f"null-model job over {run['videos']:,} videos (one actor, local folders): "
            f"{run['seconds']:.1f} s in all, {run['videos_per_s']:.0f} videos/s once the actor "
            f"was ready, {run['videos_per_call']:.1f} videos a call; driver CPU {run['cpu_s']:.1f} s "
            f"({run['cpu_s'] * 1e3 / run['videos']:.2f} core-ms per video); peak RSS "
            f"{run['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    print(
        f"driver per video (slope between {small['videos']:,} and {large['videos']:,}): "
        f"{report['cpu_ms_per_video']:.2f} core-ms of CPU (target <= 1), "
        f"{report['bytes_per_video']:.0f} bytes of peak RSS (target <= 300)",
        flush=True,
    )
    return report


def measure() -> None:
    """The child's side: the inputs, the checkpoint and Ray are ready before the clock."""
    import torch

    from vda.model import ModelConfig, VideoDepthAnything, save_checkpoint

    from ..core.config import build
    from ..core.session import start_ray
    from ..infer.config import InferConfig
    from ..infer.job import run_infer

    videos = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for i in range(videos):
            shelf = root / "videos" / f"shelf{i // 1000:04d}"
            if i % 1000 == 0:
                shelf.mkdir(parents=True)
            # never opened (the model is null); sizes as a listing shows them (an empty
            # file's size is unknown to the batches: it would travel alone)
            (shelf / f"clip{i:07d}.mp4").write_bytes(b"\0" * (1000 + i % 1000))
        torch.manual_seed(0)
        save_checkpoint(VideoDepthAnything(ModelConfig(size="tiny")), root / "tiny.ckpt")
        config = build(
            InferConfig,
            {
                "input": str(root / "videos"),
                "output": str(root / "depth"),
                "checkpoint": str(root / "tiny.ckpt"),
                "actors": {"num_actors": 1, "cpus_per_actor": 1},
                "fault": {"null_model": True},
                "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db", "experiment": "bench"},
            },
        )
        start_ray(num_cpus=os.cpu_count(), include_dashboard=False)
        lines: list[str] = []
        cpu, start = time.process_time(), time.perf_counter()
        result = run_infer(config, progress=lines.append)
        cpu, seconds = time.process_time() - cpu, time.perf_counter() - start
        assert result.count("done") == videos, lines[-5:]
        running = result.scheduled_seconds - result.startup_seconds
    print(
        json.dumps(
            {
                "videos": videos,
                "seconds": seconds,
                "cpu_s": cpu,
                "videos_per_s": videos / running if running > 0 else 0.0,
                "peak_rss_mb": peak_rss_mb(),
                "videos_per_call": videos / max(1, result.actor_calls),
            }
        )
    )
