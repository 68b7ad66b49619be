"""Which floating-point type a run computes in: the one choice, for inference and training.

`auto` is where the two uses differ, on purpose:

- **inference**: fp16 autocast on CUDA, as the official `run.py` runs (its
  default, `--fp32` off). Depth maps lose nothing measurable to fp16
  (`make gpu-check` measures the error against fp32 per device) and fp16 is
  the fastest type on every CUDA generation.
- **training**: bf16 autocast on CUDA where the device supports it (Ampere and
  later): fp16's narrow range underflows small gradients, which then need a
  loss scaler; bf16 has fp32's range. On an older GPU (no bf16) `auto` falls
  back to fp16, and the training loop turns its loss scaler on for it.

Off CUDA every setting computes fp32: CPU autocast would change the numbers
and buy little, and the official code never runs half precision on CPU.
"""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["auto", "fp32", "fp16", "bf16"]
Use = Literal["inference", "training"]

_NAMES = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def autocast_dtype(
    precision: Precision, device: torch.device | str, use: Use = "inference"
) -> torch.dtype | None:
    """The autocast dtype for this setting on this device (None: no autocast, fp32)."""
    device = torch.device(device)
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        if use == "inference" or not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def precision_used(precision: Precision, device: torch.device | str, use: Use = "inference") -> str:
    """What a run with this setting computes in: "fp32", "fp16" or "bf16" (recorded in outputs)."""
    return _NAMES[autocast_dtype(precision, device, use)]


def pick_device(asked: str | torch.device | None = None, gpu: bool = True) -> str:
    """The device a run computes on: the one asked for, else the first GPU when there is one
    and the run may use it, else the CPU. Every job and the Python API decide it here."""
    if asked is not None:
        return str(asked)
    return "cuda" if gpu and torch.cuda.is_available() else "cpu"
