"""`vda bench inference`: the encoder cache's speed-up and the engine's memory bound.

Two measurements, each from one run on this machine:
- frames/s of the streaming engine with the encoder cache against the same
  engine re-encoding its context slots (the uncached path, i.e. the official
  algorithm's cost), same weights, same frames; also the max abs difference
  of their outputs;
- peak RSS of a fresh process streaming a 500-frame and a 10,000-frame video
  through the engine and the depth writer (tiny model, small frames).
Random weights: speed and memory do not depend on their values, and no
weights are downloaded.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vda.model import ModelConfig, VideoDepthAnything
from vda.model.inference import InferenceConfig, StreamingDepthEngine

from .machine import describe_machine


def synthetic_frames(count: int, height: int, width: int, seed: int = 0) -> Iterator[np.ndarray]:
    """A texture sliding 2 px per frame, generated lazily (no video held in memory)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(height, width * 2, 3), dtype=np.uint8)
    for t in range(count):
        offset = (2 * t) % width
        yield texture[:, offset : offset + width]


@dataclass
class SpeedResult:
    frames: int
    cached_fps: float
    uncached_fps: float
    cached_steady_s: float  # seconds after the first window's output
    uncached_steady_s: float
    max_abs_diff: float
    output_range: float

    @property
    def speedup(self) -> float:
        return self.cached_fps / self.uncached_fps

    @property
    def steady_speedup(self) -> float:
        """The gain per window once the first (never cacheable) window is done."""
        return self.uncached_steady_s / self.cached_steady_s


def _random_model(size: str) -> VideoDepthAnything:
    """Random weights whose output is not identically zero (the default init's is, after
    ReLU), so that comparing the cached and uncached outputs means something."""
    torch.manual_seed(0)
    model = VideoDepthAnything(ModelConfig(size=size))
    with torch.no_grad():
        for module in model.head.motion_modules:
            torch.nn.init.normal_(module.temporal_transformer.proj_out.weight, std=0.02)
        model.head.scratch.output_conv2[2].bias.fill_(1.0)
    return model


def _timed_run(engine: StreamingDepthEngine, frames: int, height: int, width: int):
    start = time.perf_counter()
    first_output = None
    depths = []
    for _, depth in engine.run(synthetic_frames(frames, height, width)):
        if first_output is None:
            first_output = time.perf_counter()
        depths.append(depth)
    end = time.perf_counter()
    return np.stack(depths), end - start, end - first_output


def measure_speed(
    size: str, frames: int, height: int, width: int, input_size: int, device: str
) -> SpeedResult:
    """Both paths on the same frames, after an untimed warm-up of every tensor shape.

    Without the warm-up, whichever path runs first pays for creating the
    convolution primitives of each new shape, which on a CPU is worth several
    windows of difference.
    """
    model = _random_model(size).to(device).eval()
    engines = {
        cached: StreamingDepthEngine(
            model, InferenceConfig(input_size=input_size, cache_encoder=cached), device=device
        )
        for cached in (True, False)
    }
    window = engines[True].config.window
    for engine in engines.values():  # two windows: every shape either path will see
        _timed_run(engine, window.length + window.stride, height, width)
    runs = {cached: _timed_run(engine, frames, height, width) for cached, engine in engines.items()}
    diff = float(np.abs(runs[True][0] - runs[False][0]).max())
    return SpeedResult(
        frames=frames,
        cached_fps=frames / runs[True][1],
        uncached_fps=frames / runs[False][1],
        cached_steady_s=runs[True][2],
        uncached_steady_s=runs[False][2],
        max_abs_diff=diff,
        output_range=float(np.ptp(runs[False][0])) or 1.0,
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM).

    Not `getrusage().ru_maxrss`: Linux keeps that across exec, so a child
    spawned by a large benchmark process would report its parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_child(frames: int, height: int, width: int) -> None:
    """Entry point of the memory subprocess: stream, write, print peak RSS in MiB as JSON."""
    from vda.platform.video.decode import VideoInfo
    from vda.platform.video.writers import DepthOutputs, OutputOptions

    model = _random_model("tiny").eval()
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=height))
    info = VideoInfo("synthetic", width, height, width, height, 30.0, 30.0, 1, 0, "raw", frames)
    with tempfile.TemporaryDirectory() as folder:
        outputs = DepthOutputs(
            Path(folder),
            info,
            OutputOptions(preview=True),
            on_file_done=lambda path: path.unlink(),  # as the batch job uploads and deletes
        )
        count = 0
        for index, depth in engine.run(synthetic_frames(frames, height, width)):
            outputs.write(index, depth)
            count += 1
        outputs.close()
    print(json.dumps({"frames": count, "peak_rss_mib": peak_rss_mib()}))


def measure_memory(frames: int, height: int, width: int) -> dict:
    code = (
        "import sys; from vda.platform.bench.inference import peak_rss_child; "
        f"peak_rss_child({frames}, {height}, {width})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_inference_bench(
    size: str = "vits",
    frames: int = 76,
    height: int = 518,
    width: int = 518,
    input_size: int = 518,
    short_frames: int = 500,
    long_frames: int = 10_000,
    memory_size: int = 56,
    device: str | None = None,
    skip_speed: bool = False,
) -> dict:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"machine: {describe_machine(device)}", flush=True)
    report: dict = {"machine": describe_machine(device)}
    if not skip_speed:
        speed = measure_speed(size, frames, height, width, input_size, device)
        print(
            f"speed ({size}, {frames} frames of {height}x{width}, input {input_size}): "
            f"cached {speed.cached_fps:.3f} frames/s, uncached {speed.uncached_fps:.3f} frames/s, "
            f"ratio {speed.speedup:.3f}x over the whole clip, {speed.steady_speedup:.3f}x per window "
            f"after the first (target >= 1.2x); max |cached - uncached| = "
            f"{speed.max_abs_diff:.2e} (output range {speed.output_range:.3g})",
            flush=True,
        )
        report["speed"] = {
            **speed.__dict__,
            "speedup": speed.speedup,
            "steady_speedup": speed.steady_speedup,
        }
    short = measure_memory(short_frames, memory_size, memory_size)
    long = measure_memory(long_frames, memory_size, memory_size)
    ratio = long["peak_rss_mib"] / short["peak_rss_mib"]
    print(
        f"memory (tiny, {memory_size}x{memory_size}): peak RSS {short['peak_rss_mib']:.0f} MiB "
        f"for {short['frames']} frames, {long['peak_rss_mib']:.0f} MiB for {long['frames']} "
        f"frames, ratio {ratio:.3f}x (target <= 1.1x)",
        flush=True,
    )
    report["memory"] = {"short": short, "long": long, "ratio": ratio}
    return report
