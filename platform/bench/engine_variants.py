"""The same clip through variants of the engine: what each costs, how far its depth moves.

Each comparison runs both sides in one process on the same frames and
weights, after a warm-up, so the ratio is the variant's own:
- the speed levers (`SpeedOptions()`, and compiled) against the engine
  without them (`SpeedOptions.baseline()`);
- on CUDA, fp32 against bf16 and fp16 (peak memory, error against fp32);
- the ONNX Runtime export against PyTorch;
- the encoder cache against re-encoding the context slots every window
  (the official algorithm's cost).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vda.model.inference import InferenceConfig, SpeedOptions, StreamingDepthEngine

from .engine_timing import random_model, run_engine, timed_run


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


def measure_speed(
    size: str, frames: int, height: int, width: int, input_size: int, device: str
) -> SpeedResult:
    """Both paths on the same frames, after an untimed warm-up of every tensor shape.

    Without the warm-up, whichever path runs first pays for creating the
    convolution primitives of each new shape, which on a CPU is worth several
    windows of difference.
    """
    model = random_model(size).to(device).eval()
    engines = {
        cached: StreamingDepthEngine(
            model, InferenceConfig(input_size=input_size, cache_encoder=cached), device=device
        )
        for cached in (True, False)
    }
    window = engines[True].config.window
    for engine in engines.values():  # two windows: every shape either path will see
        timed_run(engine, window.length + window.stride, height, width)
    runs = {cached: timed_run(engine, frames, height, width) for cached, engine in engines.items()}
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
    model = random_model(size).to(device).eval()
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

    model = random_model(size).eval()
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
    model = random_model(size).to(device).eval()
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
