"""Shared by the steps of `make gpu-check`: budgets, tolerances, the outcome type, helpers."""

from __future__ import annotations

import contextlib
import copy
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vda.model import VideoDepthAnything


ROOT = Path(__file__).resolve().parents[2]  # the checkout

STEPS = ("engine", "latency", "online", "bulk", "train", "onnx")
TOTAL_BUDGET_S = 480.0  # 8 minutes on one H200/H100-class GPU
# Per-step limits; they add up to 475 s, under the budget, leaving the parent's own time.
LIMITS_S = {
    "engine": 80.0,
    "latency": 110.0,
    "online": 35.0,
    "bulk": 80.0,
    "train": 110.0,
    "onnx": 60.0,
}
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
    "engine": {
        "size": "vits",
        "resolutions": ((518, 518), (518, 924)),
        "frames": 44,
        "input_size": 518,
    },
    "latency": {
        "sizes": ("vits", "vitb", "vitl"),
        "side": 518,
        "frames": 99,
        "compile_modes": (False, True),
    },
    "online": {
        "size": "vits",
        "side": 518,
        "cpu_side": 266,
        "frames": 48,
        "latency_frames": 200,
        "input_size": 518,
    },
    "bulk": {"size": "vits", "videos": 4, "frames": 100, "side": 518, "input_size": 518},
    "train": {"size": "vits", "height": 98, "width": 126, "steps": 4},
    "onnx": {"size": "vits", "side": 518, "frames": 44, "input_size": 518},
}
TINY: dict[str, dict[str, Any]] = {
    "engine": {"size": "tiny", "resolutions": ((42, 42), (42, 70)), "frames": 44, "input_size": 42},
    "latency": {"sizes": ("tiny",), "side": 42, "frames": 55, "compile_modes": (False,)},
    "online": {
        "size": "tiny",
        "side": 42,
        "cpu_side": 28,
        "frames": 48,
        "latency_frames": 20,
        "input_size": 42,
    },
    "bulk": {
        "size": "tiny",
        "videos": 2,
        "frames": 40,
        "side": 42,
        "input_size": 42,
        "short": (6, 16, 42),
    },
    "train": {"size": "tiny", "height": 28, "width": 42, "steps": 3},
    "onnx": {"size": "tiny", "side": 42, "frames": 44, "input_size": 42},
}


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

    Not the benchmarks' `random_model`: its output is a near-flat ~1.0 (range ~6% of the
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
    master,
    device: str,
    precision: str,
    speed,
    frames: int,
    height: int,
    width: int,
    input_size: int,
) -> tuple[Any, float, int]:
    """(depth of every frame, seconds, frames encoded) of a fresh engine on a copy of
    `master` (an engine takes its model over: device, channels-last head)."""
    from vda.model.inference import InferenceConfig, StreamingDepthEngine
    from vda.platform.bench.engine_timing import timed_run

    config = InferenceConfig(input_size=input_size, precision=precision, speed=speed)
    engine = StreamingDepthEngine(copy.deepcopy(master), config, device=device)
    depth, seconds, _ = timed_run(engine, frames, height, width)
    return depth, seconds, engine.encoder_calls


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def _peak_memory_mib(device: str) -> float:
    """Peak GPU memory allocated by torch since the last reset; on CPU the process's peak RSS."""
    import torch

    if _is_cuda(device):
        return torch.cuda.max_memory_allocated(device) / 2**20
    from vda.platform.bench.engine_memory import peak_rss_mib

    return peak_rss_mib()


# -- step 1: engine ----------------------------------------------------------------------


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__
