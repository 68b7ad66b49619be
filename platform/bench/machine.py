"""A one-line description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform

import torch


def describe_machine(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    accelerator = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {accelerator}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}"
    )
