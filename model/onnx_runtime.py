"""An exported network run by ONNX Runtime, in the shape the streaming engine drives.

`OnnxNetwork` offers the two halves the engine calls (`encode_frames`,
`decode`) backed by `NAME.encoder.onnx` and `NAME.head.onnx`, so
`vda depth --engine onnx` runs exactly the engine's windowing, encoder
cache included, on the exported files. Execution providers: CUDA and
TensorRT when this onnxruntime build has them and they are asked for, CPU
otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import PATCH_SIZE, ModelConfig
from .onnx_export import read_metadata


class OnnxNetworkError(ValueError):
    """The file is not a vda export, or its parts are missing."""


def part_paths(path: str | Path) -> dict[str, Path]:
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    for suffix in (".encoder", ".head"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return {
        part: path.with_name(f"{stem}{suffix}.onnx")
        for part, suffix in (("whole", ""), ("encoder", ".encoder"), ("head", ".head"))
    }


def providers(device: str) -> list[str]:
    """ONNX Runtime providers for `device`: cuda asks for TensorRT then CUDA, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", *wanted]
    return [p for p in wanted if p in available]


class OnnxNetwork(nn.Module):
    """The encoder and head files of one export, with the network's config."""

    diff_cnn = None  # exports of diff-CNN models are whole-window only (refused here)

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        super().__init__()
        import onnxruntime as ort

        paths = part_paths(path)
        missing = [str(p) for p in (paths["encoder"], paths["head"]) if not p.exists()]
        if missing:
            raise OnnxNetworkError(
                f"the streaming engine needs the encoder and head files of an export "
                f"(`vda export` writes them beside {paths['whole'].name}); missing: "
                + ", ".join(missing)
            )
        meta = read_metadata(paths["encoder"])
        if meta.get("part") != "encoder":
            raise OnnxNetworkError(f"{paths['encoder']} is not a vda export (no vda.* metadata)")
        if meta.get("temporal_diff", "none") != "none":
            raise OnnxNetworkError("diff-CNN models export only as whole windows (NAME.onnx)")
        self.metadata = meta
        self.config = ModelConfig(
            size=meta["size"], metric=bool(meta["metric"]), num_frames=int(meta["num_frames"])
        )
        self.frames = int(meta["settings"]["frames"])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        chosen = providers(device)
        self.encoder = ort.InferenceSession(str(paths["encoder"]), options, providers=chosen)
        self.head = ort.InferenceSession(str(paths["head"]), options, providers=chosen)
        self.providers = self.head.get_providers()

    def encode_frames(self, images: torch.Tensor) -> list[torch.Tensor]:
        settings = self.metadata["settings"]
        size = (settings["height"], settings["width"])
        if not settings["dynamic"] and tuple(images.shape[-2:]) != size:
            height, width = images.shape[-2:]
            raise OnnxNetworkError(
                f"this export takes {size[0]}x{size[1]} inputs; these frames make {height}x"
                f"{width} at this --input-size (export with --height {height} --width {width})"
            )
        outputs = self.encoder.run(None, {"images": images.float().cpu().numpy()})
        return [torch.from_numpy(o) for o in outputs]

    def decode(
        self,
        features: list[torch.Tensor],
        batch: int,
        frames: int,
        height: int,
        width: int,
        micro_batch: int | None = None,
        keep: int | None = None,
    ) -> torch.Tensor:
        if batch != 1 or frames != self.frames:
            raise OnnxNetworkError(
                f"this export's head takes one window of {self.frames} frames, got "
                f"{batch} x {frames} (export again with --frames {frames})"
            )
        gh, gw = height // PATCH_SIZE, width // PATCH_SIZE
        maps = {
            f"map{i}": np.ascontiguousarray(
                f.float().cpu().numpy().transpose(0, 2, 1).reshape(frames, -1, gh, gw)
            )
            for i, f in enumerate(features)
        }
        depth = torch.from_numpy(self.head.run(None, maps)[0])[None]
        return depth if keep is None else depth[:, :keep]
