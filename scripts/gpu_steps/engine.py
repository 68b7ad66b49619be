"""Steps `engine` (GPU engine against CPU, precisions, speed levers) and `latency` (ms per frame)."""

from __future__ import annotations

import math
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from gpu_steps.common import (
    BF16_TOLERANCE,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    PAPER_VITS_MS,
    Outcome,
    _engine_depth,
    _is_cuda,
    _peak_memory_mib,
    accuracy_model,
    first_line,
    note,
    of_range,
    strict_fp32,
)


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

    from vda.model.inference import SpeedOptions, WindowConfig
    from vda.model.precision import precision_used

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
        "size": size,
        "frames": frames,
        "windows": windows,
        "device": device,
        "tolerances": {"fp32": FP32_TOLERANCE, "fp16": FP16_TOLERANCE, "bf16": BF16_TOLERANCE},
        "precisions": {p: precision_used(p, device) for p in ("fp32", "fp16", "bf16")},
        "resolutions": {},
    }
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

    from vda.model.inference import InferenceConfig, SpeedOptions
    from vda.model.precision import precision_used
    from vda.platform.bench.engine_timing import run_engine

    cuda = _is_cuda(device)
    figures: dict[str, Any] = {
        "side": side,
        "frames": frames,
        "precision": precision_used(precision, device),
        "runs": {},
        "paper_vits_ms": PAPER_VITS_MS,
        "not_run": [],
    }
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
                note(
                    f"{name}: not run, {left:.0f} s left and the last compile took "
                    f"{last_compile_s:.0f} s"
                )
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
                failures.append(f"{name}: {first_line(error)}")  # figures still count
                note(f"{name}: failed, {first_line(error)}")
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
        + (
            f"; VDA-S vs the paper's {PAPER_VITS_MS} ms (fp16, A100): {', '.join(paper)}"
            if paper
            else ""
        )
        + (
            f"; not run for the time limit: {', '.join(figures['not_run'])}"
            if figures["not_run"]
            else ""
        )
        + (f"; failed: {', '.join(failures)}" if failures else "")
    )
    return Outcome("FAIL" if failures else "PASS", summary, figures)


# -- step 3: bulk job --------------------------------------------------------------------
