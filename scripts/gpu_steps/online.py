"""Step `online`: the online (streaming) engine on the GPU: fp32 against the CPU, fp16
against fp32, and per-frame latency."""

from __future__ import annotations

import copy
import time
from typing import Any

from gpu_steps.common import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    Outcome,
    _is_cuda,
    accuracy_model,
    note,
    of_range,
    strict_fp32,
)


def _online_depths(master, device: str, precision: str, frames: int, side: int, input_size: int):
    """(depth of every frame, seconds per frame) of a fresh online engine on a copy of
    `master`, frame by frame as a stream delivers them (CUDA synchronised per frame: the
    depth is on the host when `step` returns)."""
    import numpy as np

    from vda.model.inference import OnlineDepthEngine
    from vda.platform.bench.engine_timing import synthetic_frames

    engine = OnlineDepthEngine(copy.deepcopy(master), input_size, precision, device)
    depths, seconds = [], []
    for frame in synthetic_frames(frames, side, side):
        start = time.perf_counter()
        depths.append(engine.step(frame))
        seconds.append(time.perf_counter() - start)
    return np.stack(depths), np.asarray(seconds)


def check_online(
    device: str = "cuda",
    size: str = "vits",
    side: int = 518,
    cpu_side: int = 266,
    frames: int = 48,
    latency_frames: int = 200,
    input_size: int = 518,
) -> Outcome:
    """fp32 on `device` vs the CPU (at `cpu_side`: a CPU at 518 would take the step's whole
    limit), fp16 vs fp32 at `side`, and p50 / p95 ms per frame in fp16 over
    `latency_frames` after the first 10 (the first frame runs alone, the next build the
    cache). 48 frames pass the schedule's warm-up (42) into its steady state."""
    import numpy as np

    cuda = _is_cuda(device)
    master = accuracy_model(size)
    cpu_input = min(input_size, cpu_side)
    cpu, _ = _online_depths(master, "cpu", "fp32", frames, cpu_side, cpu_input)
    with strict_fp32():
        small, _ = _online_depths(master, device, "fp32", frames, cpu_side, cpu_input)
        fp32, _ = _online_depths(master, device, "fp32", frames, side, input_size)
    fp16, _ = _online_depths(master, device, "fp16", frames, side, input_size)
    _, seconds = _online_depths(master, device, "fp16", latency_frames, side, input_size)
    steady = seconds[10:] * 1000
    figures: dict[str, Any] = {
        "size": size,
        "frames": frames,
        "side": side,
        "cpu_side": cpu_side,
        "fp32_vs_cpu": of_range(small, cpu),
        "fp16_vs_fp32": of_range(fp16, fp32),
        "latency_p50_ms": float(np.percentile(steady, 50)),
        "latency_p95_ms": float(np.percentile(steady, 95)),
        "first_frame_ms": float(seconds[0] * 1000),
        "latency_frames": latency_frames,
    }
    failures = []
    for key, tolerance in (("fp32_vs_cpu", FP32_TOLERANCE), ("fp16_vs_fp32", FP16_TOLERANCE)):
        if not figures[key] <= tolerance:  # NaN fails too
            failures.append(f"{key} {figures[key]:.1e} > {tolerance:.0e}")
    if not (np.isfinite(fp16).all() and np.isfinite(steady).all()):
        failures.append("non-finite depth or timing")
    summary = (
        f"{size}: fp32 vs CPU {figures['fp32_vs_cpu']:.1e} ({cpu_side}x{cpu_side}), fp16 vs "
        f"fp32 {figures['fp16_vs_fp32']:.1e} ({side}x{side}), {frames} frames; fp16 latency "
        f"p50 {figures['latency_p50_ms']:.2f} ms / p95 {figures['latency_p95_ms']:.2f} ms per "
        f"frame over {latency_frames - 10} frames"
        + ("" if cuda else f"; on {device} every precision computes fp32")
        + (f"; failed: {', '.join(failures)}" if failures else "")
    )
    note(summary)
    return Outcome("FAIL" if failures else "PASS", summary, figures)
