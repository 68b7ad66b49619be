"""`vda bench inference`: the engine's speed levers, the encoder cache and the memory bound.

Measurements, each from one run on this machine:
- frames/s of the engine with its speed levers (`SpeedOptions()`, and
  compiled with `--compile`) against the engine without them
  (`SpeedOptions.baseline()`), same weights, same frames; the max abs
  difference of their outputs; the encoder's and the head's share of each;
- on CUDA, the same engine in fp32, bf16 and fp16: ms/frame, peak memory,
  the max relative difference from fp32;
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
from vda.model.inference import InferenceConfig, SpeedOptions, StageSeconds, StreamingDepthEngine

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


@dataclass
class EngineRun:
    """One engine configuration over the clip: warm-up (compiling included) apart."""

    name: str
    warmup_s: float
    seconds: float
    frames: int
    encoder_s: float
    head_s: float
    depth: np.ndarray

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    def summary(self) -> dict:
        return {
            "name": self.name,
            "fps": self.fps,
            "ms_per_frame": 1000 * self.seconds / self.frames,
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "encoder_share": self.encoder_s / self.seconds,
            "head_share": self.head_s / self.seconds,
        }


def run_engine(
    name: str,
    model: VideoDepthAnything,
    config: InferenceConfig,
    frames: int,
    height: int,
    width: int,
    device: str,
) -> EngineRun:
    """Warm up on two windows (every shape a clip shows, and compiling), then time the clip."""
    engine = StreamingDepthEngine(model, config, device=device)
    window = config.window
    started = time.perf_counter()
    _timed_run(engine, window.length + window.stride + 1, height, width)
    _timed_run(engine, min(frames, window.length + window.stride + 1), height, width)
    warmup = time.perf_counter() - started
    engine.stage_seconds = StageSeconds()
    depth, seconds, _ = _timed_run(engine, frames, height, width)
    return EngineRun(
        name,
        warmup,
        seconds,
        frames,
        engine.stage_seconds.encoder,
        engine.stage_seconds.head,
        depth,
    )


def measure_levers(
    size: str,
    frames: int,
    height: int,
    width: int,
    input_size: int,
    device: str,
    compile: bool = False,
) -> dict:
    """The baseline engine against the engine with its levers (and compiled), one clip."""
    model = _random_model(size).to(device).eval()
    configs = {
        "baseline": SpeedOptions.baseline(),
        "levers": SpeedOptions(),
        **({"levers+compile": SpeedOptions(compile=True)} if compile else {}),
    }
    runs = []
    for name, speed in configs.items():
        config = InferenceConfig(input_size=input_size, precision="fp32", speed=speed)
        runs.append(run_engine(name, model, config, frames, height, width, device))
        print(f"  {name}: {runs[-1].fps:.3f} frames/s", flush=True)
    base = runs[0]
    # Random weights give a depth range far narrower than its magnitude (a real model's
    # disparity spans 0 .. max), so the difference is given against both.
    scale = float(np.ptp(base.depth)) or 1.0
    peak = float(np.abs(base.depth).max()) or 1.0
    report = {"frames": frames, "size": size, "input_size": input_size, "runs": []}
    for run in runs:
        entry = run.summary()
        entry["speedup"] = run.fps / base.fps
        entry["max_abs_diff"] = float(np.abs(run.depth - base.depth).max())
        entry["max_diff_of_range"] = entry["max_abs_diff"] / scale
        entry["max_diff_of_peak"] = entry["max_abs_diff"] / peak
        report["runs"].append(entry)
    report["output_range"], report["output_peak"] = scale, peak
    return report


def measure_onnx(
    size: str, frames: int, height: int, width: int, input_size: int, device: str
) -> dict:
    """The streaming engine on PyTorch (levers on) and on its ONNX Runtime export, one clip.

    The export is made at the clip's network input size into a temporary folder.
    """
    from vda.model.onnx_export import ExportSettings, export_onnx
    from vda.model.onnx_runtime import OnnxNetwork
    from vda.model.transforms import effective_input_size, network_size

    model = _random_model(size).eval()
    net_h, net_w = network_size(height, width, effective_input_size(height, width, input_size))
    config = InferenceConfig(input_size=input_size, precision="fp32")
    torch_run = run_engine("pytorch", model, config, frames, height, width, device)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = Path(folder) / f"{size}.onnx"
        export_onnx(
            model, path, ExportSettings(frames=config.window.length, height=net_h, width=net_w)
        )
        export_s = time.perf_counter() - started
        network = OnnxNetwork(path, device)
        onnx_run = run_engine("onnxruntime", network, config, frames, height, width, "cpu")
    scale = float(np.ptp(torch_run.depth)) or 1.0
    return {
        "size": size,
        "frames": frames,
        "providers": network.providers,
        "export_s": export_s,
        "pytorch": torch_run.summary(),
        "onnxruntime": onnx_run.summary(),
        "ratio": onnx_run.fps / torch_run.fps,
        "max_diff_of_range": float(np.abs(onnx_run.depth - torch_run.depth).max()) / scale,
    }


def measure_precisions(
    size: str, frames: int, height: int, width: int, input_size: int, device: str
) -> dict:
    """CUDA only: the engine (levers on) in fp32, bf16 and fp16; peak memory; error vs fp32."""
    model = _random_model(size).to(device).eval()
    runs: dict[str, dict] = {}
    reference: np.ndarray | None = None
    for precision in ("fp32", "bf16", "fp16"):
        torch.cuda.reset_peak_memory_stats(device)
        config = InferenceConfig(input_size=input_size, precision=precision)
        run = run_engine(precision, model, config, frames, height, width, device)
        entry = run.summary()
        entry["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        if reference is None:
            reference = run.depth
        denominator = np.maximum(np.abs(reference), 1e-6 * float(np.abs(reference).max()))
        entry["max_rel_diff_vs_fp32"] = float((np.abs(run.depth - reference) / denominator).max())
        runs[precision] = entry
    return {"size": size, "frames": frames, "runs": runs}


def print_levers(report: dict) -> None:
    print(
        f"engine levers ({report['size']}, {report['frames']} frames, input "
        f"{report['input_size']}, fp32):",
        flush=True,
    )
    for run in report["runs"]:
        print(
            f"  {run['name']:<15} {run['fps']:.3f} frames/s ({run['ms_per_frame']:.0f} ms/frame), "
            f"{run['speedup']:.3f}x the baseline (CPU target >= 1.4x); encoder "
            f"{100 * run['encoder_share']:.0f}% / head {100 * run['head_share']:.0f}% of the time; "
            f"warm-up {run['warmup_s']:.1f} s; max |diff| {run['max_abs_diff']:.1e} = "
            f"{run['max_diff_of_range']:.1e} of the range, {run['max_diff_of_peak']:.1e} of the "
            "largest depth (target <= 1e-5)",
            flush=True,
        )
    print(
        f"  (baseline output: range {report['output_range']:.3g}, largest "
        f"{report['output_peak']:.3g}; warm-up = two untimed clips, compiling included)",
        flush=True,
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
    levers_frames: int = 100,
    compile: bool = False,
    skip_levers: bool = False,
    skip_cache: bool = False,
    gpu_sizes: tuple[str, ...] = ("vits", "vitl"),
    engine: str = "torch",
) -> dict:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"machine: {describe_machine(device)}", flush=True)
    report: dict = {"machine": describe_machine(device)}
    if engine == "onnx":
        result = measure_onnx(size, levers_frames, height, width, input_size, device)
        print(
            f"onnx ({size}, {result['frames']} frames, {', '.join(result['providers'])}): ONNX "
            f"Runtime {result['onnxruntime']['fps']:.3f} frames/s vs PyTorch "
            f"{result['pytorch']['fps']:.3f} frames/s: {result['ratio']:.3f}x; max |diff| "
            f"{result['max_diff_of_range']:.1e} of the range; export + check "
            f"{result['export_s']:.0f} s",
            flush=True,
        )
        report["onnx"] = result
        return report
    if not skip_speed and not skip_levers:
        levers = measure_levers(size, levers_frames, height, width, input_size, device, compile)
        print_levers(levers)
        report["levers"] = levers
    if not skip_speed and device.startswith("cuda"):
        report["precisions"] = {}
        for gpu_size in gpu_sizes:
            result = measure_precisions(gpu_size, levers_frames, height, width, input_size, device)
            for name, run in result["runs"].items():
                print(
                    f"  {gpu_size} {name}: {run['fps']:.1f} frames/s, {run['ms_per_frame']:.2f} "
                    f"ms/frame, peak {run['peak_gpu_mib']:.0f} MiB, max relative diff vs fp32 "
                    f"{run['max_rel_diff_vs_fp32']:.2e}",
                    flush=True,
                )
            report["precisions"][gpu_size] = result
    if not skip_speed and not skip_cache:
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
