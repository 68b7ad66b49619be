"""The bulk job's cost around the model per short video (`vda bench infer --many N`).

`vda bench infer --many N` runs N short clips through `vda infer` (local
folders, one actor) and the bare engine over the same decoded frames, in
one run on one machine (the bare engine before and after the jobs: this
machine drifts), and prints the job's seconds per video, the bare
model's, and the difference: the job's overhead per video (decode, outputs,
commit, bookkeeping, Ray round trips), startup excluded. The job runs four
times: one video a call, one call in flight per actor; two calls, the next
queued on the actor (`actors.units_in_flight`); two side by side, taking
turns on the model (`actors.overlap=always`; `auto`, the default, does so
on GPU actors); and the default, short videos several to a call
(`actors.batch_s`), two calls queued; so the effect of each is measured in
the same run. The target is <= 20 ms per video, so that
short-clip archives are bound by the model. It also counts the lines the
job printed (a large job prints status lines, not a line per video).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

from ..core.session import start_ray
from .machine import describe_machine

# (calls in flight, actors.overlap, actors.batch_s): alone, queued, side by side, batched
RUNS = ((1, "never", 0.0), (2, "never", 0.0), (2, "always", 0.0), (2, "never", 5.0))


def run_many_bench(videos: int, frames: int, side: int, size: str, input_size: int) -> dict:
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
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        torch.manual_seed(0)
        checkpoint = root / f"video_depth_anything_{size}.pth"
        export_official(VideoDepthAnything(ModelConfig(size=size)), checkpoint)
        (root / "videos").mkdir()
        scenes = 8  # a few distinct clips, copied: encoding N synthetic scenes is not the point
        for index in range(scenes):
            scene = SyntheticScene(SyntheticConfig(frames=frames, height=side, width=side), index)
            write_video(root / f"s{index}.mp4", (f.rgb for f in scene.frames()), fps=24)
        decoded = []
        for index in range(videos):
            source = root / f"s{index % scenes}.mp4"
            (root / "videos" / f"clip{index:05d}.mp4").write_bytes(source.read_bytes())
            if index < scenes:
                with open_video(source) as reader:
                    decoded.append(list(reader.frames()))
        threads = torch.get_num_threads()
        engine = StreamingDepthEngine(
            load_checkpoint(io.BytesIO(checkpoint.read_bytes())),
            InferenceConfig(input_size=input_size),
        )
        list(engine.run(iter(decoded[0])))  # warm-up

        def bare() -> float:
            start = time.perf_counter()
            for index in range(videos):
                for _ in engine.run(iter(decoded[index % scenes])):
                    pass
            return time.perf_counter() - start

        bare_before = bare()

        start_ray(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
        )
        runs = {}
        for in_flight, overlap, batch_s in RUNS:
            lines: list[str] = []
            config = build(
                InferConfig,
                {
                    "input": str(root / "videos"),
                    "output": str(root / f"depth{in_flight}{overlap}{batch_s}"),
                    "checkpoint": str(checkpoint),
                    "input_size": input_size,
                    "actors": {
                        "num_actors": 1,
                        "cpus_per_actor": 1,
                        "torch_threads": threads,
                        "units_in_flight": in_flight,
                        "overlap": overlap,
                        "batch_s": batch_s,
                    },
                    "mlflow": {
                        "tracking_uri": f"sqlite:///{root}/mlflow.db",
                        "experiment": "bench",
                    },
                },
            )
            result = run_infer(config, progress=lines.append)
            job_s = result.scheduled_seconds - result.startup_seconds
            runs[(in_flight, overlap, batch_s)] = {
                "done": result.count("done"),
                "job_s_per_video": job_s / videos,
                "job_s": job_s,
                "startup_s": result.startup_seconds,
                "lines_printed": len(lines),
                "videos_per_call": videos / max(1, result.actor_calls),
            }
        ray.shutdown()
        # the bare engine again: this machine's speed drifts by several percent between
        # minutes, and the overhead is a difference; the mean of both is the reference
        bare_after = bare()
    bare_s = (bare_before + bare_after) / 2
    for run in runs.values():
        job_s = run.pop("job_s")
        run["overhead_ms_per_video"] = (job_s - bare_s) / videos * 1000
    report = {
        "machine": describe_machine(),
        "videos": videos,
        "bare_s_per_video": bare_s / videos,
        "bare_s_per_video_before_and_after": [bare_before / videos, bare_after / videos],
        **runs[RUNS[3]],
        "one_in_flight": runs[RUNS[0]],
        "queued": runs[RUNS[1]],
        "side_by_side": runs[RUNS[2]],
    }
    for (in_flight, overlap, batch_s), run in runs.items():
        how = "side by side" if overlap == "always" else "queued" if in_flight > 1 else "alone"
        how += f", {run['videos_per_call']:.1f} videos a call" if batch_s else ""
        print(
            f"bulk job over {videos} clips of {frames} frames ({side}x{side}, {size} at input "
            f"{input_size}, one actor, {in_flight} call(s) in flight ({how}), local folders): "
            f"{run['job_s_per_video'] * 1000:.1f} ms per video after startup vs bare model "
            f"{report['bare_s_per_video'] * 1000:.1f} ms (before the jobs "
            f"{bare_before / videos * 1000:.1f}, after {bare_after / videos * 1000:.1f}): overhead "
            f"{run['overhead_ms_per_video']:.1f} ms per video (target <= 20); startup "
            f"{run['startup_s']:.1f} s; {run['lines_printed']} lines printed",
            flush=True,
        )
    return report
