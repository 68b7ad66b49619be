"""Step `bulk`: `vda infer` on the GPU, with the GPU's busy share sampled while it runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from gpu_steps.common import Outcome, _is_cuda, _workdir, accuracy_model, note
from vda.platform.core.session import start_ray


class BusyMeter:
    """The GPU's busy share (% of time a kernel ran), sampled on a thread while a job runs.

    NVML through pynvml (the nvidia-ml-py package) when importable, else
    torch.cuda.utilization(), else nvidia-smi; `source` says which, or why none.
    """

    def __init__(self, device_index: int = 0, period_s: float = 0.25) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self.source, self._read = self._reader(device_index)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _reader(index: int) -> tuple[str, Callable[[], float] | None]:
        import torch

        problems = []
        uuid = ""
        with contextlib.suppress(Exception):
            uuid = f"GPU-{torch.cuda.get_device_properties(index).uuid}"
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = (
                pynvml.nvmlDeviceGetHandleByUUID(uuid.encode())
                if uuid
                else pynvml.nvmlDeviceGetHandleByIndex(index)
            )
            pynvml.nvmlDeviceGetUtilizationRates(handle)
            return "NVML (pynvml)", lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception as error:
            problems.append(f"pynvml: {type(error).__name__}: {error}")
        try:
            torch.cuda.utilization(index)
            return "torch.cuda.utilization", lambda: float(torch.cuda.utilization(index))
        except Exception as error:
            problems.append(f"torch.cuda.utilization: {type(error).__name__}: {error}")
        smi = shutil.which("nvidia-smi")
        if smi:
            command = [
                smi,
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                "-i",
                uuid or str(index),
            ]

            def read() -> float:
                out = subprocess.run(command, capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])

            try:
                read()
                return "nvidia-smi", read
            except Exception as error:
                problems.append(f"nvidia-smi: {type(error).__name__}: {error}")
        else:
            problems.append("nvidia-smi: not on PATH")
        return "not measured (" + "; ".join(p.splitlines()[0] for p in problems) + ")", None

    def __enter__(self) -> BusyMeter:
        if self._read is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append(self._read())
            self._stop.wait(self.period_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


@contextlib.contextmanager
def local_ray(device: str, root: Path) -> Iterator[None]:
    """A throwaway local Ray instance with this machine's CPUs (and its GPUs, which Ray
    detects), its files in the step's folder, stopped on the way out; the check never
    joins a cluster the environment points at (the parent removes RAY_ADDRESS)."""

    import ray

    temp_dir = root / "ray"
    own_dir = len(str(temp_dir)) > 48  # Ray's socket paths must stay under 108 bytes
    if own_dir:
        temp_dir = Path(tempfile.mkdtemp(prefix="gcray", dir="/tmp"))
    start_ray(
        num_cpus=os.cpu_count(),
        num_gpus=None if _is_cuda(device) else 0,
        include_dashboard=False,
        configure_logging=False,
        _temp_dir=str(temp_dir),
    )
    try:
        yield
    finally:
        ray.shutdown()
        if own_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _write_archive(folder: Path, videos: int, frames: int, side: int) -> list[Path]:
    """Short H.264 mp4s of a sliding texture (the benchmarks' synthetic frames)."""
    import numpy as np

    from vda.platform.bench.engine_timing import synthetic_frames
    from vda.platform.video.writers import write_video

    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_video(
            folder / f"v{index}.mp4",
            (np.ascontiguousarray(f) for f in synthetic_frames(frames, side, side, seed=index)),
            fps=24,
        )
        for index in range(videos)
    ]


def check_bulk(
    device: str = "cuda",
    size: str = "vits",
    videos: int = 4,
    frames: int = 100,
    side: int = 518,
    input_size: int = 518,
    workdir: str | None = None,
    short: tuple[int, int, int] = (48, 16, 112),
) -> Outcome:
    """`run_infer` over a local archive, one actor on the GPU then two sharing it, against
    the bare engine on the same decoded frames; the GPU's busy share during each job. Then
    `short` = (clips, frames, side): many short clips, the job's overhead per video."""
    with _workdir(workdir, "bulk") as root:
        return _bulk(device, size, videos, frames, side, input_size, root, short)


def _bulk(
    device: str,
    size: str,
    videos: int,
    frames: int,
    side: int,
    input_size: int,
    root: Path,
    short: tuple[int, int, int],
) -> Outcome:

    from vda.model import export_official
    from vda.platform.core.config import build
    from vda.platform.infer.config import InferConfig
    from vda.platform.infer.job import run_infer

    cuda = _is_cuda(device)
    paths = _write_archive(root / "videos", videos, frames, side)
    checkpoint = root / f"video_depth_anything_{size}.pth"  # the official layout and name
    export_official(accuracy_model(size), checkpoint)
    decoded = _decoded(paths)
    total = sum(len(v) for v in decoded)
    bare_s, precision = _bare_seconds(device, checkpoint, input_size, decoded)
    bare_fps = total / bare_s
    note(f"bare engine: {bare_fps:.1f} frames/s ({size}, {precision}, {total} frames)")
    cpus = os.cpu_count() or 1
    variants = {
        "1 actor": {"num_actors": 1, "gpus_per_actor": 1.0 if cuda else 0.0},
        "2 actors": {"num_actors": 2, "gpus_per_actor": 0.5 if cuda else 0.0},
    }
    figures: dict[str, Any] = {
        "bare_fps": bare_fps,
        "frames": total,
        "videos": videos,
        "precision": precision,
        "jobs": {},
    }
    failures, parts = [], []
    with local_ray(device, root):
        for name, actors in variants.items():
            count = actors["num_actors"]
            # on a GPU a few cores per actor feed it; on CPU the cores are shared out
            actors["cpus_per_actor"] = (
                max(1, min(4, cpus // count)) if cuda else max(0.5, cpus / count)
            )
            config = build(
                InferConfig,
                {
                    "input": str(root / "videos"),
                    "output": str(root / f"depth-{count}"),
                    "checkpoint": str(checkpoint),
                    "input_size": input_size,
                    "actors": actors,
                    "mlflow": {
                        "tracking_uri": f"sqlite:///{root}/mlflow.db",
                        "experiment": "gpu-check",
                    },
                    "progress_s": 3600,
                },
            )
            with BusyMeter() if cuda else contextlib.nullcontext() as meter:
                result = run_infer(config, progress=print)  # progress lines go to the step's log
            running = result.scheduled_seconds - result.startup_seconds
            job = {
                "job_fps": result.frames / result.seconds,
                "running_fps": result.frames / running if running > 0 else float("nan"),
                "seconds": result.seconds,
                "startup_s": result.startup_seconds,
                "done": result.count("done"),
                "failed": result.count("failed"),
                "precisions": sorted({r.precision for r in result.rows}),
                "busy_source": meter.source if meter else "none: a CPU run",
                "busy_mean": meter.mean if meter else None,
                "busy_samples": len(meter.samples) if meter else 0,
            }
            job["ratio"] = job["job_fps"] / bare_fps
            job["running_ratio"] = job["running_fps"] / bare_fps
            figures["jobs"][name] = job
            if job["done"] != videos or job["failed"] or result.frames != total:
                failures.append(
                    f"{name}: {job['done']}/{videos} done, {job['failed']} failed, "
                    f"{result.frames}/{total} frames"
                )
            if job["precisions"] != [precision]:  # fp16 on the GPU; a CPU actor computes fp32
                failures.append(f"{name}: actors computed {job['precisions']}, not {precision}")
            if job["busy_mean"] is not None:
                busy = f"GPU busy {job['busy_mean']:.0f}% ({job['busy_source']})"
            elif meter:
                busy = f"GPU busy share {job['busy_source']}"
            else:
                busy = "no GPU to sample (CPU run)"
            line = (
                f"{name} ({actors['gpus_per_actor']:g} GPU, {actors['cpus_per_actor']:g} CPU each): "
                f"job {job['job_fps']:.1f} frames/s = {job['ratio']:.2f}x bare, "
                f"{job['running_fps']:.1f} frames/s = {job['running_ratio']:.2f}x after "
                f"{job['startup_s']:.1f} s of actor start; {busy}"
            )
            note(line)
            parts.append(line)
        figures["short"] = _short_clips(device, checkpoint, root, *short)
        clips = figures["short"]
        if clips["done"] != clips["videos"]:
            failures.append(f"short clips: {clips['done']}/{clips['videos']} done")
        line = (
            f"{clips['videos']} clips of {short[1]} frames at {short[2]}x{short[2]}, 1 actor, "
            f"{clips['videos_per_call']:.1f} a call: {clips['job_ms']:.1f} ms a clip after "
            f"the actor's start vs bare engine {clips['bare_ms']:.1f}: overhead "
            f"{clips['overhead_ms']:.1f} ms a clip (target <= 20)"
        )
        note(line)
        parts.append(line)
    summary = (
        f"{videos} videos x {frames} frames of {side}x{side}, {size} {precision}; bare engine "
        f"{bare_fps:.1f} frames/s; " + "; ".join(parts)
    )
    if failures:
        summary += "; failed: " + ", ".join(failures)
    return Outcome("FAIL" if failures else "PASS", summary, figures)


def _decoded(paths: list[Path]) -> list[list[Any]]:
    from vda.platform.video import open_video

    decoded = []
    for path in paths:
        with open_video(path) as reader:
            decoded.append(list(reader.frames()))
    return decoded


def _bare_seconds(
    device: str, checkpoint: Path, input_size: int, decoded: list[list[Any]]
) -> tuple[float, str]:
    """(seconds, precision) of the bare engine over every decoded video, after a warm-up
    that meets every tensor shape once (54 frames: a window and a stride)."""
    from vda.model import load_checkpoint
    from vda.model.inference import InferenceConfig, StreamingDepthEngine

    engine = StreamingDepthEngine(
        load_checkpoint(checkpoint), InferenceConfig(input_size=input_size), device=device
    )
    list(engine.run(iter(decoded[0][:54])))
    started = time.perf_counter()
    for video in decoded:
        for _ in engine.run(iter(video)):
            pass
    return time.perf_counter() - started, engine.precision


def _short_clips(
    device: str, checkpoint: Path, root: Path, clips: int, frames: int, side: int
) -> dict[str, Any]:
    """The job with its defaults (short clips batched; side by side on a GPU) over many
    short clips, against the bare engine on the same decoded clips: the job's overhead
    per video, whose <= 20 ms target the 2-core development machine misses (docs/infer.md).
    Ray is up (the caller's `local_ray`)."""
    from vda.platform.core.config import build
    from vda.platform.infer.config import InferConfig
    from vda.platform.infer.job import run_infer

    decoded = _decoded(_write_archive(root / "short", clips, frames, side))
    bare_s, _ = _bare_seconds(device, checkpoint, side, decoded)
    cuda = _is_cuda(device)
    cpus = os.cpu_count() or 1
    actors = {
        "num_actors": 1,
        "gpus_per_actor": 1.0 if cuda else 0.0,
        "cpus_per_actor": max(1, min(4, cpus)) if cuda else cpus,
    }
    config = build(
        InferConfig,
        {
            "input": str(root / "short"),
            "output": str(root / "depth-short"),
            "checkpoint": str(checkpoint),
            "input_size": side,
            "actors": actors,
            "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db", "experiment": "gpu-check"},
            "progress_s": 3600,
        },
    )
    result = run_infer(config, progress=print)
    running = result.scheduled_seconds - result.startup_seconds
    return {
        "videos": clips,
        "done": result.count("done"),
        "bare_ms": bare_s / clips * 1000,
        "job_ms": running / clips * 1000,
        "overhead_ms": (running - bare_s) / clips * 1000,
        "videos_per_call": clips / max(1, result.actor_calls),
    }


# -- step 4: training --------------------------------------------------------------------
