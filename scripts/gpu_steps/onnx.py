"""Step `onnx`: the exported model through ONNX Runtime's CUDA provider against PyTorch."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from gpu_steps.common import (
    ONNX_TOLERANCE,
    Outcome,
    _is_cuda,
    _workdir,
    accuracy_model,
    of_range,
    strict_fp32,
)


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
    from vda.platform.bench.engine_timing import run_engine

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
    if _is_cuda(device) and providers[0] not in (
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
    ):
        failures.append(f"ONNX Runtime ran on {providers[0]}, not on the GPU")
    if not diff <= ONNX_TOLERANCE:
        failures.append(f"ONNX vs PyTorch {diff:.1e} > {ONNX_TOLERANCE:.0e} of range")
    figures = {
        "providers": providers,
        "export_s": export_s,
        "export_checks": export.checks,
        "onnx_fps": onnx_run.fps,
        "torch_fps": torch_run.fps,
        "ratio": onnx_run.fps / torch_run.fps,
        "max_diff_of_range": diff,
        "tolerance": ONNX_TOLERANCE,
    }
    summary = (
        f"{size} {side}x{side}, {frames} frames, fp32: ONNX Runtime ({providers[0]}) "
        f"{onnx_run.fps:.1f} frames/s vs PyTorch on {device} {torch_run.fps:.1f} frames/s "
        f"= {figures['ratio']:.2f}x; max diff {diff:.1e} of range (tolerance "
        f"{ONNX_TOLERANCE:.0e}); export + CPU parity check {export_s:.0f} s"
        + ("; failed: " + ", ".join(failures) if failures else "")
    )
    return Outcome("FAIL" if failures else "PASS", summary, figures)
