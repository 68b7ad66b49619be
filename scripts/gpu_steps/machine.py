"""The machine table `make gpu-check` ends with: device, driver, library versions."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path


def driver_version() -> str:
    """The NVIDIA driver: /proc (no tools needed), else nvidia-smi, else unknown."""
    with contextlib.suppress(OSError):
        text = Path("/proc/driver/nvidia/version").read_text()
        for word in text.split():
            if word.count(".") >= 1 and word.replace(".", "").isdigit():
                return word
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(Exception):
            out = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
    return "none (no NVIDIA driver found)"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cudnn(version: int | None) -> str:
    """cuDNN 9 reports 92400 for 9.24.0."""
    if not version:
        return "n/a"
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def machine_table(device: str) -> dict[str, str]:
    """What the figures were measured on, for the results table of docs/gpu-check.md."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        names = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            names.append(f"{props.name} ({props.total_memory / 2**30:.0f} GiB)")
        gpus = ", ".join(names)
    else:
        gpus = "no CUDA device"
    nccl = "n/a"
    with contextlib.suppress(Exception):
        version = torch.cuda.nccl.version()
        nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    providers = "?"
    with contextlib.suppress(Exception):
        import onnxruntime

        providers = ", ".join(onnxruntime.get_available_providers())
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "device": gpus,
        "steps ran on": device,
        "driver": driver_version(),
        "torch": torch.__version__,
        "CUDA (torch build)": torch.version.cuda or "none (CPU-only build)",
        "cuDNN": _cudnn(torch.backends.cudnn.version()),
        "NCCL": nccl,
        "onnxruntime": f"{_version('onnxruntime')} ({providers})",
        "ray": _version("ray"),
        "python": platform.python_version(),
        "CPU cores": str(os.cpu_count()),
    }


def print_table(table: dict[str, str]) -> None:
    width = max(len(k) for k in table)
    value_width = max(len(v) for v in table.values())
    print(f"| {'machine':<{width}} | {'':<{value_width}} |")
    print(f"|{'-' * (width + 2)}|{'-' * (value_width + 2)}|")
    for key, value in table.items():
        print(f"| {key:<{width}} | {value:<{value_width}} |")
