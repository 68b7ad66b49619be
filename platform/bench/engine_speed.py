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
  through the engine and the depth writer (tiny model, small frames);
- with `--online`, only: the online engine's frames/s and latency against the
  offline engine's, same frames (`engine_online`).
Random weights: speed and memory do not depend on their values, and no
weights are downloaded. The measuring is in `engine_variants` (speed) and
`engine_memory`; this module runs what the flags ask for and prints it.
"""

from __future__ import annotations

from vda.model.precision import pick_device

from .engine_memory import measure_memory
from .engine_online import measure_online
from .engine_variants import measure_levers, measure_onnx, measure_precisions, measure_speed
from .machine import describe_machine


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
    online: bool = False,
) -> dict:
    device = pick_device(device)
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
    if online:
        result = measure_online(size, frames, height, width, input_size, device)
        on, off = result["online"], result["offline"]
        print(
            f"online vs offline ({size}, {frames} frames of {height}x{width}, input "
            f"{input_size}): online {on['fps']:.3f} frames/s, latency p50 "
            f"{on['latency_p50_ms']:.0f} ms / p95 {on['latency_p95_ms']:.0f} ms; offline "
            f"{off['fps']:.3f} frames/s, latency p50 {off['latency_p50_ms']:.0f} ms / p95 "
            f"{off['latency_p95_ms']:.0f} ms; frames/s ratio {result['fps_ratio']:.3f}x, "
            f"latency p50 ratio {result['latency_p50_ratio']:.3f}x",
            flush=True,
        )
        report["online"] = result
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
