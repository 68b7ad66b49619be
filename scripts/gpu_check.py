#!/usr/bin/env python3
"""`make gpu-check`: the project's GPU claims, each run as a short step under its own limit.

Why a script and not tests: the suite runs on CPU-only machines, and a GPU is
lent to a session only by chance, for minutes. This one command, run from the
checkout with `.venv` built, checks every GPU claim on such a machine within
8 minutes (one H200/H100-class GPU) and installs nothing. It prints one line
per step, `[PASS|FAIL|SKIP|TIMEOUT] step: figures`, then a table of the
machine (device, driver, torch / CUDA versions, date) to paste into
docs/gpu-check.md. Exit status 0 when every step passed or was skipped.

Steps (each a plain function here, so tests/code/test_gpu_check.py runs them
on CPU with the tiny model: `--device cpu --tiny`):

- engine: the streaming engine in fp32 on the GPU equals the CPU engine;
  fp16 and bf16 stay within a stated tolerance of fp32; every speed lever on
  (`SpeedOptions()`) equals `SpeedOptions.baseline()`; encoder cache on.
- latency: ms per frame of vits / vitb / vitl at 518x518, fp16, windows of
  32, eager and compiled; peak GPU memory; VDA-S against the paper's 7.5 ms.
- bulk: `vda infer` (`run_infer`) over a local archive with one GPU actor and
  with two actors sharing the GPU, against the bare engine on the same frames,
  and the GPU's busy share while the job ran.
- train: two Ray Train workers (NCCL on GPU) through the training driver, or,
  on a machine of one GPU, the driver's pieces with 0.5 GPU per worker (one
  worker through the driver where NCCL refuses two ranks on one device); bf16
  autocast, a few steps: finite losses, identical weights on every rank, a
  checkpoint written and resumed.
- onnx: the exported vits through ONNX Runtime's CUDA provider against
  PyTorch on the GPU.

Each step runs in a child process of its own session, so a hang (a stuck
NCCL rendezvous, a compile that never ends) becomes a TIMEOUT line and the
next step still runs; the child's Ray processes die with it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vda.model import VideoDepthAnything
    from vda.platform.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

STEPS = ("engine", "latency", "bulk", "train", "onnx")
TOTAL_BUDGET_S = 480.0  # 8 minutes on one H200/H100-class GPU
# Per-step limits; they add up to 460 s, under the budget, leaving the parent's own time.
LIMITS_S = {"engine": 85.0, "latency": 120.0, "bulk": 70.0, "train": 120.0, "onnx": 65.0}
MIN_STEP_S = 10.0  # a step is not started with less left in the budget

# Tolerances, as max |a - b| over the output range of the reference (`of_range`).
# Same arithmetic, other kernels (GPU vs CPU fp32 with TF32 off; levers vs baseline):
# float32 rounding in a different order, ~1e-6 relative per op, well under 1e-4.
FP32_TOLERANCE = 1e-4
# Autocast (fp16: 11-bit mantissa, bf16: 8-bit): calibrated with CPU autocast on the same
# random vits weights at 518x518 and 518x924 (fp16 ~1e-3, bf16 ~1e-2 of the range); the
# bounds leave several times that for GPU kernels, the output's own rounding included.
FP16_TOLERANCE = 1e-2
BF16_TOLERANCE = 5e-2
# ONNX Runtime's CUDA provider runs convolutions and matmuls in TF32 by default (10-bit
# mantissa), against PyTorch in true fp32: the fp16 bound.
ONNX_TOLERANCE = 1e-2
PAPER_VITS_MS = 7.5  # VDA-S, fp16, one A100 (the paper's latency table)

# Parameters of each step on a GPU (the defaults) and with --tiny (tiny model, small
# frames: what the CPU test runs). Two windows: frames 0-31, then 22-43 plus 10 padding
# slots (44 frames), so the encoder cache and the padding lever both act.
FULL: dict[str, dict[str, Any]] = {
    "engine": {"size": "vits", "resolutions": ((518, 518), (518, 924)), "frames": 44,
               "input_size": 518},
    "latency": {"sizes": ("vits", "vitb", "vitl"), "side": 518, "frames": 99,
                "compile_modes": (False, True)},
    "bulk": {"size": "vits", "videos": 4, "frames": 100, "side": 518, "input_size": 518},
    "train": {"size": "vits", "height": 98, "width": 126, "steps": 4},
    "onnx": {"size": "vits", "side": 518, "frames": 44, "input_size": 518},
}  # fmt: skip
TINY: dict[str, dict[str, Any]] = {
    "engine": {"size": "tiny", "resolutions": ((42, 42), (42, 70)), "frames": 44,
               "input_size": 42},
    "latency": {"sizes": ("tiny",), "side": 42, "frames": 55, "compile_modes": (False,)},
    "bulk": {"size": "tiny", "videos": 2, "frames": 40, "side": 42, "input_size": 42},
    "train": {"size": "tiny", "height": 28, "width": 42, "steps": 3},
    "onnx": {"size": "tiny", "side": 42, "frames": 44, "input_size": 42},
}  # fmt: skip


@dataclass
class Outcome:
    """What one step found: PASS, FAIL or SKIP (the parent adds TIMEOUT), one line of
    figures for the terminal, and every figure for --json."""

    status: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)


_notes = None  # where progress lines go: stdout, or in a step's process the parent's pipe


def note(message: str) -> None:
    """One progress line, shown live under the step (a timeout keeps what was measured)."""
    print(f"    {message}", file=_notes or sys.stdout, flush=True)


@contextlib.contextmanager
def _workdir(path: str | None, step: str) -> Iterator[Path]:
    """The step's scratch folder: `path` (the parent's, removed by it), else a temporary one."""
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{step}-") as folder:
        yield Path(folder)


# -- shared measuring helpers ------------------------------------------------------------


def of_range(value: Any, reference: Any) -> float:
    """max |value - reference| over the reference's range: 0 means equal."""
    import numpy as np

    span = float(np.ptp(reference)) or float(np.abs(reference).max()) or 1.0
    return float(np.abs(np.asarray(value) - np.asarray(reference)).max()) / span


def accuracy_model(size: str, seed: int = 0) -> VideoDepthAnything:
    """A model of `size` with every weight random (tests/helpers.py `randomize`), built from
    its config, no weights loaded.

    Not the benchmarks' `_random_model`: its output is a near-flat ~1.0 (range ~6% of the
    value), over which bf16's own rounding of the output alone is several percent, so a
    comparison "of the range" would measure the weights, not the arithmetic.
    """
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import randomize

    from vda.model import ModelConfig, VideoDepthAnything

    torch.manual_seed(seed)
    return randomize(VideoDepthAnything(ModelConfig(size=size)).eval(), seed)


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off for matmuls and cuDNN convolutions: fp32 that is fp32 (torch's default lets
    cuDNN convolve in TF32, a 10-bit mantissa)."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _engine_depth(
    master, device: str, precision: str, speed, frames: int, height: int, width: int,
    input_size: int,
) -> tuple[Any, float, int]:  # fmt: skip
    """(depth of every frame, seconds, frames encoded) of a fresh engine on a copy of
    `master` (an engine takes its model over: device, channels-last head)."""
    from vda.model.inference import InferenceConfig, StreamingDepthEngine
    from vda.platform.bench.inference import _timed_run

    config = InferenceConfig(input_size=input_size, precision=precision, speed=speed)
    engine = StreamingDepthEngine(copy.deepcopy(master), config, device=device)
    depth, seconds, _ = _timed_run(engine, frames, height, width)
    return depth, seconds, engine.encoder_calls


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _peak_memory_mib(device: str) -> float:
    """Peak GPU memory allocated by torch since the last reset; on CPU the process's peak RSS."""
    import torch

    if _is_cuda(device):
        return torch.cuda.max_memory_allocated(device) / 2**20
    from vda.platform.bench.inference import peak_rss_mib

    return peak_rss_mib()


# -- step 1: engine ----------------------------------------------------------------------


def check_engine(
    device: str = "cuda",
    size: str = "vits",
    resolutions: tuple[tuple[int, int], ...] = ((518, 518), (518, 924)),
    frames: int = 44,
    input_size: int = 518,
) -> Outcome:
    """fp32 on `device` vs the CPU engine, fp16 / bf16 vs fp32, levers vs baseline.

    Every run is the whole streaming engine (windows, encoder cache, alignment) on the
    same frames, so a kernel that differs anywhere shows in the final depth.
    """
    import numpy as np
    import torch

    from vda.model.inference import SpeedOptions, WindowConfig, precision_used

    cuda = _is_cuda(device)
    master = accuracy_model(size)
    window = WindowConfig()
    windows = window.window_count(frames)
    padded = window.length + (windows - 1) * window.stride > frames
    # cache on: each frame encoded once (+ one copy of the padding frame with skip_padding);
    # the baseline encodes every slot of each window's new part, padding included
    levers_calls = frames + (1 if padded else 0)
    baseline_calls = window.length + (windows - 1) * window.stride
    if cuda:  # CUDA context, cuDNN heuristics: paid once, before anything is timed
        _engine_depth(master, device, "fp16", SpeedOptions(), window.length, 56, 56, 56)
    figures: dict[str, Any] = {
        "size": size, "frames": frames, "windows": windows, "device": device,
        "tolerances": {"fp32": FP32_TOLERANCE, "fp16": FP16_TOLERANCE, "bf16": BF16_TOLERANCE},
        "precisions": {p: precision_used(p, device) for p in ("fp32", "fp16", "bf16")},
        "resolutions": {},
    }  # fmt: skip
    failures: list[str] = []
    parts = []
    for height, width in resolutions:
        label = f"{height}x{width}"
        args = (frames, height, width, input_size)
        cpu, cpu_s, _ = _engine_depth(master, "cpu", "fp32", SpeedOptions(), *args)
        with strict_fp32():
            fp32, fp32_s, calls = _engine_depth(master, device, "fp32", SpeedOptions(), *args)
            base, base_s, base_calls = _engine_depth(
                master, device, "fp32", SpeedOptions.baseline(), *args
            )
        result: dict[str, Any] = {
            "output_range": float(np.ptp(cpu)),
            "fp32_vs_cpu": of_range(fp32, cpu),
            "levers_vs_baseline": of_range(fp32, base),
            "encoder_calls": calls,
            "baseline_encoder_calls": base_calls,
            "seconds": {"cpu": cpu_s, "fp32": fp32_s, "fp32_baseline": base_s},
        }
        if cuda:  # torch's defaults let cuDNN convolve in TF32: shown, not held to 1e-4
            default_fp32, _, _ = _engine_depth(master, device, "fp32", SpeedOptions(), *args)
            result["fp32_default_tf32_vs_cpu"] = of_range(default_fp32, cpu)
        for precision in ("fp16", "bf16"):
            depth, seconds, _ = _engine_depth(master, device, precision, SpeedOptions(), *args)
            result[f"{precision}_vs_fp32"] = of_range(depth, fp32)
            result["seconds"][precision] = seconds
            if not np.isfinite(depth).all():
                failures.append(f"{label} {precision}: non-finite depth")
        checks = {
            "fp32_vs_cpu": FP32_TOLERANCE,
            "levers_vs_baseline": FP32_TOLERANCE,
            "fp16_vs_fp32": FP16_TOLERANCE,
            "bf16_vs_fp32": BF16_TOLERANCE,
        }
        for key, tolerance in checks.items():
            if not result[key] <= tolerance:  # NaN fails too
                failures.append(f"{label} {key} {result[key]:.1e} > {tolerance:.0e}")
        if calls != levers_calls or base_calls != baseline_calls:
            failures.append(
                f"{label} encoder calls {calls} / baseline {base_calls}, expected "
                f"{levers_calls} / {baseline_calls}"
            )
        figures["resolutions"][label] = result
        tf32 = (
            f" (torch defaults, TF32 convs: {result['fp32_default_tf32_vs_cpu']:.1e})"
            if cuda
            else ""
        )
        line = (
            f"{label}: fp32 vs CPU {result['fp32_vs_cpu']:.1e}{tf32}, fp16 "
            f"{result['fp16_vs_fp32']:.1e}, bf16 {result['bf16_vs_fp32']:.1e}, levers vs "
            f"baseline {result['levers_vs_baseline']:.1e} (x{base_s / fp32_s:.2f} speed); "
            f"{calls} frames encoded for {frames}"
        )
        note(line)
        parts.append(line)
    head = (
        f"{size}, {frames} frames = {windows} windows, cache on; of the output range, "
        f"tolerances fp32 {FP32_TOLERANCE:.0e}, fp16 {FP16_TOLERANCE:.0e}, "
        f"bf16 {BF16_TOLERANCE:.0e}"
    )
    if not cuda:
        head += f"; on {device} every precision computes fp32 (precision_used)"
    if cuda:
        torch.cuda.empty_cache()
    status = "FAIL" if failures else "PASS"
    summary = "; ".join([head, *parts] + ([f"failed: {', '.join(failures)}"] if failures else []))
    return Outcome(status, summary, figures)


# -- step 2: latency ---------------------------------------------------------------------


def check_latency(
    device: str = "cuda",
    sizes: tuple[str, ...] = ("vits", "vitb", "vitl"),
    side: int = 518,
    frames: int = 99,
    compile_modes: tuple[bool, ...] = (False, True),
    precision: str = "fp16",
    deadline: float | None = None,
) -> Outcome:
    """ms per frame of the streaming engine (the benchmark's `run_engine`: two untimed
    55-frame clips of warm-up, compiling included, then one timed clip), eager then compiled.

    The timed clip must show no tensor shape the warm-up did not, or a compiled engine
    compiles again inside the timing: 55 + 22k frames end on a last window exactly like
    the warm-up's (11 real slots), hence 99 frames. Eager runs come first for every size,
    and a compiled size is not started when the previous compile says it cannot finish
    before `deadline` (time.monotonic()), so a slow compile costs only compiled figures.
    Random weights: speed does not depend on their values.
    """
    import numpy as np
    import torch

    from vda.model.inference import InferenceConfig, SpeedOptions, precision_used
    from vda.platform.bench.inference import run_engine

    cuda = _is_cuda(device)
    figures: dict[str, Any] = {
        "side": side, "frames": frames, "precision": precision_used(precision, device),
        "runs": {}, "paper_vits_ms": PAPER_VITS_MS, "not_run": [],
    }  # fmt: skip
    models = {}
    depths: dict[tuple[str, bool], Any] = {}
    failures = []
    last_compile_s = 0.0
    for compiled in compile_modes:
        for size in sizes:
            name = f"{size} {'compiled' if compiled else 'eager'}"
            left = deadline - time.monotonic() if deadline is not None else math.inf
            if compiled and last_compile_s and left < 1.5 * last_compile_s:
                figures["not_run"].append(name)
                note(f"{name}: not run, {left:.0f} s left and the last compile took "
                     f"{last_compile_s:.0f} s")  # fmt: skip
                continue
            if size not in models:
                models[size] = accuracy_model(size)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            config = InferenceConfig(
                input_size=side, precision=precision, speed=SpeedOptions(compile=compiled)
            )
            try:
                run = run_engine(name, models[size], config, frames, side, side, device)
            except Exception as error:  # a compiler missing on this machine, say: the other
                failures.append(f"{name}: {_first_line(error)}")  # figures still count
                note(f"{name}: failed, {_first_line(error)}")
                traceback.print_exc()
                continue
            if compiled:
                last_compile_s = run.warmup_s
            entry = {
                "ms_per_frame": 1000 * run.seconds / run.frames,
                "model_ms_per_frame": 1000 * (run.encoder_s + run.head_s) / run.frames,
                "peak_mib": _peak_memory_mib(device),
                "warmup_s": run.warmup_s,
            }
            depths[(size, compiled)] = run.depth
            if compiled and (size, False) in depths:
                entry["vs_eager"] = of_range(run.depth, depths[(size, False)])
                if not entry["vs_eager"] <= FP16_TOLERANCE:
                    failures.append(f"{name} differs from eager by {entry['vs_eager']:.1e}")
            if not (np.isfinite(entry["ms_per_frame"]) and np.isfinite(run.depth).all()):
                failures.append(f"{name}: non-finite figures")
            if size == "vits":
                entry["vs_paper"] = entry["ms_per_frame"] / PAPER_VITS_MS
                entry["model_vs_paper"] = entry["model_ms_per_frame"] / PAPER_VITS_MS
            figures["runs"][name] = entry
            memory = "peak GPU" if cuda else "peak RSS"
            note(
                f"{name}: {entry['ms_per_frame']:.2f} ms/frame ({entry['model_ms_per_frame']:.2f}"
                f" in the network), {memory} {entry['peak_mib']:.0f} MiB, warm-up "
                f"{entry['warmup_s']:.0f} s"
                + (f", vs eager {entry['vs_eager']:.1e} of range" if "vs_eager" in entry else "")
            )
    runs = figures["runs"]
    parts = [f"{name} {run['ms_per_frame']:.2f} ms" for name, run in runs.items()]
    paper = [
        f"{name} {run['vs_paper']:.2f}x ({run['model_vs_paper']:.2f}x in the network)"
        for name, run in runs.items()
        if "vs_paper" in run
    ]
    peak = max((run["peak_mib"] for run in runs.values()), default=0.0)
    summary = (
        f"{side}x{side}, {figures['precision']}, windows of 32, {frames} frames, ms/frame: "
        f"{', '.join(parts)}; peak {'GPU memory' if cuda else 'RSS'} {peak:.0f} MiB"
        + (f"; VDA-S vs the paper's {PAPER_VITS_MS} ms (fp16, A100): {', '.join(paper)}"
           if paper else "")
        + (f"; not run for the time limit: {', '.join(figures['not_run'])}"
           if figures["not_run"] else "")
        + (f"; failed: {', '.join(failures)}" if failures else "")
    )  # fmt: skip
    return Outcome("FAIL" if failures else "PASS", summary, figures)


# -- step 3: bulk job --------------------------------------------------------------------


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
            command = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                       "-i", uuid or str(index)]  # fmt: skip

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
    import logging

    import ray

    temp_dir = root / "ray"
    own_dir = len(str(temp_dir)) > 48  # Ray's socket paths must stay under 108 bytes
    if own_dir:
        temp_dir = Path(tempfile.mkdtemp(prefix="gcray", dir="/tmp"))
    ray.init(
        num_cpus=os.cpu_count(),
        num_gpus=None if _is_cuda(device) else 0,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
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

    from vda.platform.bench.inference import synthetic_frames
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
) -> Outcome:
    """`run_infer` over a local archive, one actor on the GPU then two sharing it, against
    the bare engine on the same decoded frames; the GPU's busy share during each job."""
    with _workdir(workdir, "bulk") as root:
        return _bulk(device, size, videos, frames, side, input_size, root)


def _bulk(
    device: str, size: str, videos: int, frames: int, side: int, input_size: int, root: Path
) -> Outcome:

    from vda.model import export_official, load_checkpoint
    from vda.model.inference import InferenceConfig, StreamingDepthEngine
    from vda.platform.core.config import build
    from vda.platform.infer.config import InferConfig
    from vda.platform.infer.job import run_infer
    from vda.platform.video import open_video

    cuda = _is_cuda(device)
    paths = _write_archive(root / "videos", videos, frames, side)
    checkpoint = root / f"video_depth_anything_{size}.pth"  # the official layout and name
    export_official(accuracy_model(size), checkpoint)
    decoded = []
    for path in paths:
        with open_video(path) as reader:
            decoded.append(list(reader.frames()))
    total = sum(len(v) for v in decoded)
    engine = StreamingDepthEngine(
        load_checkpoint(checkpoint), InferenceConfig(input_size=input_size), device=device
    )
    list(engine.run(iter(decoded[0][:54])))  # warm-up: every tensor shape once
    started = time.perf_counter()
    for video in decoded:
        for _ in engine.run(iter(video)):
            pass
    bare_fps = total / (time.perf_counter() - started)
    precision = engine.precision
    del engine
    note(f"bare engine: {bare_fps:.1f} frames/s ({size}, {precision}, {total} frames)")
    cpus = os.cpu_count() or 1
    variants = {
        "1 actor": {"num_actors": 1, "gpus_per_actor": 1.0 if cuda else 0.0},
        "2 actors": {"num_actors": 2, "gpus_per_actor": 0.5 if cuda else 0.0},
    }
    figures: dict[str, Any] = {"bare_fps": bare_fps, "frames": total, "videos": videos,
                               "precision": precision, "jobs": {}}  # fmt: skip
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
                    "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db",
                               "experiment": "gpu-check"},
                    "progress_s": 3600,
                },
            )  # fmt: skip
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
    summary = (
        f"{videos} videos x {frames} frames of {side}x{side}, {size} {precision}; bare engine "
        f"{bare_fps:.1f} frames/s; " + "; ".join(parts)
    )
    if failures:
        summary += "; failed: " + ", ".join(failures)
    return Outcome("FAIL" if failures else "PASS", summary, figures)


# -- step 4: training --------------------------------------------------------------------


def check_train(
    device: str = "cuda",
    size: str = "vits",
    height: int = 98,
    width: int = 126,
    steps: int = 4,
    workdir: str | None = None,
    trainer: str = "auto",
) -> Outcome:
    """Two workers train for `steps` steps, then the same run name again for one epoch more,
    which resumes from the first run's checkpoint.

    `trainer`: "driver" runs the training driver (`vda.platform.train.driver.train`);
    "scaled" runs the driver with a GPU fraction per worker (`gpus_per_worker`; on CPU,
    CPU workers: the same code); "auto" takes "scaled" with
    0.5 GPU each on a machine of exactly one GPU, falling back to one worker through the
    driver where NCCL refuses two ranks on one device, and the driver elsewhere.
    """
    if trainer not in ("auto", "driver", "scaled"):
        raise ValueError(f"trainer must be auto, driver or scaled, got {trainer!r}")
    with _workdir(workdir, "train") as root:
        return _train(device, size, height, width, steps, root, trainer)


def _train_config(root: Path, data: str, name: str, size: str, height: int, width: int,
                  steps: int, workers: int, cuda: bool, epochs: int,
                  gpu_share: float | None = None) -> TrainConfig:  # fmt: skip
    from vda.platform.core.config import build
    from vda.platform.train.config import TrainConfig

    return build(
        TrainConfig,
        {
            "name": name,
            "storage_path": str(root / "runs"),
            "model": {"size": size},
            "data": {
                "train": data,
                "clip": {"clip_len": 4, "batch_size": 2, "windows_per_chunk": 6,
                         "augment": {"height": height, "width": width, "max_scale": 1.2}},
                "val_clips": 2,
            },
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "epochs": epochs,
            "steps_per_epoch": steps,
            "num_workers": workers,
            "use_gpu": cuda,
            "gpus_per_worker": gpu_share or 1.0,
            "cpus_per_worker": 1.0 if cuda else 0.5,
            "precision": "bf16",  # autocast on CUDA; the loop computes fp32 on CPU
            "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db", "experiment": "gpu-check"},
        },
    )  # fmt: skip


def _train(
    device: str, size: str, height: int, width: int, steps: int, root: Path, trainer: str
) -> Outcome:
    import numpy as np
    import torch
    from mlflow.tracking import MlflowClient

    from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare
    from vda.platform.train.driver import train

    cuda = _is_cuda(device)
    with local_ray(device, root):
        data = str(root / "data")
        prepare(
            PrepareConfig(
                dst=data,
                chunk_frames=8,
                synthetic=SyntheticOptions(sequences=4, frames=16, height=height, width=width),
            ),
            progress=print,
        )
        gpus = torch.cuda.device_count() if cuda else 0
        backend = "nccl" if cuda else "gloo"
        notes: list[str] = []
        share = 0.5 if cuda and gpus == 1 else None  # two workers on the one GPU
        scaled = trainer == "scaled" or (trainer == "auto" and share is not None)
        workers = 2

        def config(epochs: int) -> TrainConfig:
            name = f"{'scaled' if scaled else 'driver'}-{workers}w"
            return _train_config(
                root, data, name, size, height, width, steps, workers, cuda, epochs, share
            )

        first = None
        if scaled:
            if share:
                note("one GPU: two workers at 0.5 GPU each (NCCL may refuse 2 ranks on 1 GPU)")
            try:
                first = train(config(1))
            except Exception as error:
                if trainer == "scaled" or not share:
                    raise
                notes.append(f"2 ranks on one GPU refused ({_first_line(error)}): fell back to "
                             "1 worker through the driver, so no ranks' weights to compare")  # fmt: skip
                note(notes[-1])
                scaled, share, workers = False, None, 1
        if first is None:
            first = train(config(1))
        note(f"first run: {steps} steps, metrics {_brief(first.metrics)}")
        second = train(config(2))
        note(f"resumed run: metrics {_brief(second.metrics)}")

    history = MlflowClient(first.tracking_uri).get_metric_history(first.mlflow_run_id, "train/loss")
    logged = sorted(m.step for m in history)
    losses = [m.value for m in history]
    spreads = [r.metrics.get("weight_spread", float("nan")) for r in (first, second)]
    failures = []
    if not (losses and np.isfinite(losses).all()):
        failures.append(f"losses not finite: {losses}")
    if workers > 1 and spreads != [0.0, 0.0]:
        failures.append(f"ranks' weights differ after the steps (spread {spreads})")
    if first.checkpoint_path is None or not Path(first.checkpoint_path).exists():
        failures.append(f"no checkpoint written ({first.checkpoint_path})")
    if second.mlflow_run_id != first.mlflow_run_id:
        failures.append("the rerun opened a new MLflow run instead of resuming")
    if second.metrics.get("step") != 2 * steps or second.metrics.get("epoch") != 2:
        failures.append(f"resumed run ended at {_brief(second.metrics)}, not step {2 * steps}")
    if logged != list(range(1, 2 * steps + 1)):  # a restart from scratch logs steps twice
        failures.append(f"steps logged {logged}: not resumed at step {steps + 1}")
    mode = "bf16 autocast" if cuda else "fp32 (no autocast on CPU)"
    layout = f"{workers} worker{'s' if workers > 1 else ''}" + (
        f" at {share:g} GPU each" if share else ""
    )
    layout += " (training driver)"
    figures = {
        "backend": backend, "workers": workers, "gpu_share": share, "gpus": gpus,
        "trainer": "scaled" if scaled else "driver",
        "precision": "bf16" if cuda else "fp32", "losses": losses, "weight_spread": spreads,
        "checkpoint": first.checkpoint_path, "resumed_checkpoint": second.checkpoint_path,
        "steps_logged": logged, "notes": notes,
    }  # fmt: skip
    summary = (
        f"{size}, {layout}, {backend}, {mode}: {steps} steps then {steps} more resumed from "
        f"the checkpoint; losses "
        + (f"{losses[0]:.3f} .. {losses[-1]:.3f}" if losses else "none logged")
        + f" (all finite: {bool(losses) and bool(np.isfinite(losses).all())}); weight spread "
        "over ranks "
        + ("/".join(f"{s:g}" for s in spreads) if workers > 1 else "not compared (1 worker)")
        + f"; steps logged 1..{logged[-1] if logged else 0} once each"
        + ("; " + "; ".join(notes) if notes else "")
        + ("; failed: " + ", ".join(failures) if failures else "")
    )
    return Outcome("FAIL" if failures else "PASS", summary, figures)


def _brief(metrics: dict[str, Any]) -> str:
    keys = ("epoch", "step", "train_loss", "weight_spread", "val_abs_rel")
    return ", ".join(
        f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), float | int)
    )


# -- step 5: ONNX ------------------------------------------------------------------------


def check_onnx(
    device: str = "cuda",
    size: str = "vits",
    side: int = 518,
    frames: int = 44,
    input_size: int = 518,
    workdir: str | None = None,
) -> Outcome:
    """The streaming engine on the ONNX export (`export_onnx` + `OnnxNetwork`) against the
    same engine on PyTorch, same weights and frames; skipped on a GPU when this
    onnxruntime build has no CUDA provider (the check installs nothing)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if _is_cuda(device) and "CUDAExecutionProvider" not in available:
        return Outcome(
            "SKIP",
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: "
            f"{', '.join(available)}): the CPU build from pyproject is installed, and "
            "onnxruntime-gpu would be a different install",
            {"providers": available},
        )
    with _workdir(workdir, "onnx") as root:
        return _onnx(device, size, side, frames, input_size, root)


def _onnx(device: str, size: str, side: int, frames: int, input_size: int, root: Path) -> Outcome:
    from vda.model.inference import InferenceConfig
    from vda.model.onnx_export import ExportSettings, export_onnx
    from vda.model.onnx_runtime import OnnxNetwork
    from vda.model.transforms import effective_input_size, network_size
    from vda.platform.bench.inference import run_engine

    master = accuracy_model(size)
    config = InferenceConfig(input_size=input_size, precision="fp32")
    with strict_fp32():
        torch_run = run_engine("pytorch", copy.deepcopy(master), config, frames, side, side, device)
    net_h, net_w = network_size(side, side, effective_input_size(side, side, input_size))
    started = time.perf_counter()
    path = root / f"{size}.onnx"
    export = export_onnx(
        copy.deepcopy(master),
        path,
        ExportSettings(frames=config.window.length, height=net_h, width=net_w),
    )
    export_s = time.perf_counter() - started
    network = OnnxNetwork(path, device)
    onnx_run = run_engine("onnxruntime", network, config, frames, side, side, "cpu")
    diff = of_range(onnx_run.depth, torch_run.depth)
    providers = network.providers
    failures = []
    if _is_cuda(device) and providers[0] not in ("CUDAExecutionProvider",
                                                  "TensorrtExecutionProvider"):  # fmt: skip
        failures.append(f"ONNX Runtime ran on {providers[0]}, not on the GPU")
    if not diff <= ONNX_TOLERANCE:
        failures.append(f"ONNX vs PyTorch {diff:.1e} > {ONNX_TOLERANCE:.0e} of range")
    figures = {
        "providers": providers, "export_s": export_s, "export_checks": export.checks,
        "onnx_fps": onnx_run.fps, "torch_fps": torch_run.fps,
        "ratio": onnx_run.fps / torch_run.fps, "max_diff_of_range": diff,
        "tolerance": ONNX_TOLERANCE,
    }  # fmt: skip
    summary = (
        f"{size} {side}x{side}, {frames} frames, fp32: ONNX Runtime ({providers[0]}) "
        f"{onnx_run.fps:.1f} frames/s vs PyTorch on {device} {torch_run.fps:.1f} frames/s "
        f"= {figures['ratio']:.2f}x; max diff {diff:.1e} of range (tolerance "
        f"{ONNX_TOLERANCE:.0e}); export + CPU parity check {export_s:.0f} s"
        + ("; failed: " + ", ".join(failures) if failures else "")
    )
    return Outcome("FAIL" if failures else "PASS", summary, figures)


STEP_FUNCTIONS: dict[str, Callable[..., Outcome]] = {
    "engine": check_engine,
    "latency": check_latency,
    "bulk": check_bulk,
    "train": check_train,
    "onnx": check_onnx,
}
WORKDIR_STEPS = ("bulk", "train", "onnx")


# -- the machine -------------------------------------------------------------------------


def driver_version() -> str:
    """The NVIDIA driver: /proc (no tools needed), else nvidia-smi, else unknown."""
    with contextlib.suppress(OSError):
        text = Path("/proc/driver/nvidia/version").read_text()
        for word in text.split():
            if word.count(".") >= 1 and word.replace(".", "").isdigit():
                return word
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(Exception):
            out = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
    return "none (no NVIDIA driver found)"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cudnn(version: int | None) -> str:
    """cuDNN 9 reports 92400 for 9.24.0."""
    if not version:
        return "n/a"
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def machine_table(device: str) -> dict[str, str]:
    """What the figures were measured on, for the results table of docs/gpu-check.md."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        names = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            names.append(f"{props.name} ({props.total_memory / 2**30:.0f} GiB)")
        gpus = ", ".join(names)
    else:
        gpus = "no CUDA device"
    nccl = "n/a"
    with contextlib.suppress(Exception):
        version = torch.cuda.nccl.version()
        nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    providers = "?"
    with contextlib.suppress(Exception):
        import onnxruntime

        providers = ", ".join(onnxruntime.get_available_providers())
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "device": gpus,
        "steps ran on": device,
        "driver": driver_version(),
        "torch": torch.__version__,
        "CUDA (torch build)": torch.version.cuda or "none (CPU-only build)",
        "cuDNN": _cudnn(torch.backends.cudnn.version()),
        "NCCL": nccl,
        "onnxruntime": f"{_version('onnxruntime')} ({providers})",
        "ray": _version("ray"),
        "python": platform.python_version(),
        "CPU cores": str(os.cpu_count()),
    }


def print_table(table: dict[str, str]) -> None:
    width = max(len(k) for k in table)
    value_width = max(len(v) for v in table.values())
    print(f"| {'machine':<{width}} | {'':<{value_width}} |")
    print(f"|{'-' * (width + 2)}|{'-' * (value_width + 2)}|")
    for key, value in table.items():
        print(f"| {key:<{width}} | {value:<{value_width}} |")


# -- running the steps -------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


def _session_members(session: int) -> list[int]:
    """Live processes of `session` (the step's child started it): Ray's workers make process
    groups of their own, so the session, not the group, holds everything the step began.
    Zombies are left out: they are dead, waiting for a parent to reap them."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] not in ("Z", "X"):  # state ... session
                members.append(int(entry.name))
    return members


def _end_session(process: subprocess.Popen) -> None:
    """End the step's child and every process of its session: TERM, a few seconds to exit,
    then KILL, repeated while any is left (a dying raylet may still start a worker)."""
    for sig, wait in ((signal.SIGTERM, 5.0), *[(signal.SIGKILL, 1.0)] * 10):
        process.send_signal(sig)  # a no-op once the child is reaped
        for pid in _session_members(process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not _session_members(process.pid):
                return
            time.sleep(0.1)


def run_step_in_child(name: str, device: str, tiny: bool, limit_s: float, log_dir: Path) -> dict:
    """Run one step in a child process (a session of its own) under `limit_s`; its progress
    lines are echoed live, everything else it prints goes to `log_dir/<step>.log`."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gpu-check-{name}-"))
    result_path = workdir / "result.json"
    log_path = log_dir / f"{name}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-step", name,
               "--device", device, "--workdir", str(workdir / "w"),
               "--result", str(result_path), "--log", str(log_path),
               "--limit-s", str(limit_s)]  # fmt: skip
    if tiny:
        command.append("--tiny")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.pop("RAY_ADDRESS", None)  # never a cluster the environment points at
    started = time.monotonic()
    with log_path.open("a") as log:  # what the child prints before it redirects its output
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
    last: list[str] = []

    def echo() -> None:
        for line in process.stdout:
            print(line, end="", flush=True)
            last[:] = [line.strip()]

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    _end_session(process)  # also ends anything the step left behind
    reader.join(timeout=5)
    seconds = time.monotonic() - started
    record: dict[str, Any] = {"step": name, "seconds": seconds, "limit_s": limit_s,
                              "log": str(log_path), "session": process.pid}  # fmt: skip
    if timed_out:
        record.update(
            status="TIMEOUT",
            summary=f"no result within its {limit_s:.0f} s limit"
            + (f"; last progress: {last[0]}" if last else "")
            + f" (log: {log_path})",
        )
    elif result_path.exists():
        record.update(json.loads(result_path.read_text()))
    else:
        record.update(
            status="FAIL",
            summary=f"the step's process exited with {process.returncode} and no result "
            f"(log: {log_path}): {_tail(log_path)}",
        )
    shutil.rmtree(workdir, ignore_errors=True)
    return record


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(empty log)"
    return "(no log)"


def child_main(args: argparse.Namespace) -> int:
    """Inside the step's process: progress to the parent's pipe, all other output to the log,
    the outcome to --result as JSON."""
    global _notes
    sys.stdout.flush()
    _notes = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(args.log, "a")  # noqa: SIM115 - stays open for the process's life
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    name = args.run_step
    params = dict((TINY if args.tiny else FULL)[name])
    if name in WORKDIR_STEPS:
        params["workdir"] = args.workdir
    if name == "latency" and args.limit_s:  # a margin to print and write the result
        params["deadline"] = time.monotonic() + float(args.limit_s) - 10
    try:
        outcome = STEP_FUNCTIONS[name](device=args.device, **params)
    except Exception as error:
        traceback.print_exc()
        outcome = Outcome("FAIL", f"{_first_line(error)} (log: {args.log})")
    finally:
        with contextlib.suppress(Exception):
            import ray

            if ray.is_initialized():
                ray.shutdown()
    Path(args.result).write_text(json.dumps(asdict(outcome), default=_plain))
    return 0


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays in figures."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _parse_limits(pairs: list[str]) -> dict[str, float]:
    limits = dict(LIMITS_S)
    for pair in pairs:
        step, _, seconds = pair.partition("=")
        if step not in STEPS or not seconds:
            raise SystemExit(f"--limit takes STEP=SECONDS with STEP in {', '.join(STEPS)}")
        limits[step] = float(seconds)
    return limits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Check the project's GPU claims, one short step each (docs/gpu-check.md)."
    )
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated steps to run (default: {','.join(STEPS)})",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="every step with the tiny model and small frames"
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: run the steps on CPU even where a GPU exists (tests)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--budget",
        type=float,
        default=TOTAL_BUDGET_S,
        help=f"seconds for all steps together (default {TOTAL_BUDGET_S:.0f})",
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="STEP=SECONDS",
        help="a step's own time limit (defaults: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in LIMITS_S.items())
        + ")",
    )
    parser.add_argument("--log-dir", type=Path, help="step logs (default: a new /tmp folder)")
    for hidden in ("--run-step", "--workdir", "--result", "--log", "--limit-s"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the chosen steps, each in its own process and time limit, and report; 0 when
    every step passed or was skipped (a machine without CUDA skips them all)."""
    args = build_parser().parse_args(argv)
    if args.run_step:
        return child_main(args)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise SystemExit(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    limits = _parse_limits(args.limit)
    import torch

    records: list[dict[str, Any]] = []
    ran_on = args.device
    if args.device == "cuda" and not torch.cuda.is_available():
        ran_on = "nothing (no CUDA device)"
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(
            f"no CUDA device: torch {torch.__version__} ({build}) sees no GPU; every step is "
            "skipped (--device cpu runs them on CPU)",
            flush=True,
        )
        for name in steps:
            records.append({"step": name, "status": "SKIP", "summary": "no CUDA device"})
            print(f"[SKIP] {name}: no CUDA device", flush=True)
    else:
        log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="gpu-check-logs-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        device = "cuda" if args.device == "cuda" else "cpu"
        print(f"gpu-check: {', '.join(steps)} on {device}"
              f"{' (tiny model)' if args.tiny else ''}; budget {args.budget:.0f} s; "
              f"logs in {log_dir}", flush=True)  # fmt: skip
        started = time.monotonic()
        for name in steps:
            left = args.budget - (time.monotonic() - started)
            limit = min(limits[name], left)
            print(f"{name} (limit {limit:.0f} s) ...", flush=True)
            if left < MIN_STEP_S:
                record = {"step": name, "status": "TIMEOUT",
                          "summary": f"not started: {left:.0f} s left of the "
                          f"{args.budget:.0f} s budget"}  # fmt: skip
            else:
                record = run_step_in_child(name, device, args.tiny, limit, log_dir)
            records.append(record)
            took = f" ({record['seconds']:.0f} s)" if "seconds" in record else ""
            print(f"[{record['status']}] {name}: {record['summary']}{took}", flush=True)
    table = machine_table(ran_on)
    words = {"PASS": "passed", "FAIL": "failed", "TIMEOUT": "timed out", "SKIP": "skipped"}
    counts = {word: sum(1 for r in records if r["status"] == s) for s, word in words.items()}
    table["result"] = ", ".join(f"{n} {word}" for word, n in counts.items() if n) or "no steps"
    print()
    print_table(table)
    passed = all(r["status"] in ("PASS", "SKIP") for r in records)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": table, "steps": records, "passed": passed}
        args.json.write_text(json.dumps(report, indent=2, default=_plain))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
