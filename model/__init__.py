"""The Video Depth Anything network, its losses and metrics, and long-video inference.

Plain PyTorch: nothing in this package imports Ray or touches object storage.
Exports resolve lazily (PEP 562), so `import vda.model.metrics` in a Ray Data
worker does not pay for importing torch and timm.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "checkpoint",
    "export_official": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_weights": "checkpoint",
    "official_state_dict": "checkpoint",
    "save_checkpoint": "checkpoint",
    "MAX_FRAMES": "config",
    "PATCH_SIZE": "config",
    "ModelConfig": "config",
    "VideoDepthAnything": "network",
    "preprocess_frames": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
