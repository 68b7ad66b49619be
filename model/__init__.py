"""The Video Depth Anything network, its losses and metrics, and long-video inference.

Plain PyTorch: nothing in this package imports Ray or touches object storage.
"""

from .checkpoint import (
    CheckpointError,
    export_official,
    load_checkpoint,
    load_weights,
    official_state_dict,
    save_checkpoint,
)
from .config import MAX_FRAMES, PATCH_SIZE, ModelConfig
from .network import VideoDepthAnything
from .transforms import preprocess_frames

__all__ = [
    "MAX_FRAMES",
    "PATCH_SIZE",
    "CheckpointError",
    "ModelConfig",
    "VideoDepthAnything",
    "export_official",
    "load_checkpoint",
    "load_weights",
    "official_state_dict",
    "preprocess_frames",
    "save_checkpoint",
]
