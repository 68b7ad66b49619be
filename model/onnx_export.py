"""ONNX export of the network, verified against PyTorch with ONNX Runtime.

Three files per export, because a runtime that streams long videos needs the
two halves apart as much as one that runs a single window needs them joined:

- `NAME.onnx`: the whole network for one window, (B, T, 3, H, W) -> (B, T, H, W);
- `NAME.encoder.onnx`: (N, 3, H, W) -> four tapped features (N, h*w, C), which a
  runtime can cache per frame as the streaming engine does;
- `NAME.head.onnx`: the four features of one window, as (T, C, h, w) maps,
  -> (T, H, W) depth.

Each file carries the model size, metric flag, window frames and export
settings in its metadata (`vda.*` keys), so `vda depth --engine onnx` needs
nothing but the file. Every export is run in ONNX Runtime on CPU against the
PyTorch model at the export size and, when H and W are dynamic, at a second
size; a difference above the tolerance fails the export and no file stays.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import PATCH_SIZE
from .network import VideoDepthAnything

OPSET = 18
DYNAMIC_HINT = (
    ". Dynamic H and W do not survive the export of the encoder's position-embedding "
    "resampling (the official bicubic `scale_factor` formula is frozen at the example size); "
    "export one file per input size instead (without --dynamic)"
)
METADATA_PREFIX = "vda."


class OnnxExportError(RuntimeError):
    """The exporter or the parity check refused; the message says which and why."""


class WholeWindow(nn.Module):
    def __init__(self, model: VideoDepthAnything) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames)


class EncoderPart(nn.Module):
    def __init__(self, model: VideoDepthAnything) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.encode_frames(images))


class HeadPart(nn.Module):
    """Feature maps (T, C, h, w) in, so the grid is in the input's shape."""

    def __init__(self, model: VideoDepthAnything) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, map0: torch.Tensor, map1: torch.Tensor, map2: torch.Tensor, map3: torch.Tensor
    ) -> torch.Tensor:
        frames, _, grid_h, grid_w = map0.shape
        tokens = [m.flatten(2).transpose(1, 2) for m in (map0, map1, map2, map3)]
        depth = self.model.decode(tokens, 1, frames, grid_h * PATCH_SIZE, grid_w * PATCH_SIZE)
        return depth[0]


@dataclass
class ExportSettings:
    frames: int = 32
    height: int = 518
    width: int = 518
    dynamic: bool = False  # dynamic H and W (multiples of 14)
    check_size: tuple[int, int] | None = None  # second size checked when dynamic
    tolerance: float = 1e-4  # max |onnx - torch| / output range


@dataclass
class ExportReport:
    paths: dict[str, str]
    checks: list[dict] = field(default_factory=list)
    dynamic: bool = False


def _metadata(model: VideoDepthAnything, settings: ExportSettings, part: str) -> dict[str, str]:
    values = {
        "part": part,
        "size": model.config.size,
        "metric": model.config.metric,
        "num_frames": model.config.num_frames,
        "temporal_diff": model.config.temporal_diff,
        "settings": asdict(settings),
        "opset": OPSET,
    }
    return {METADATA_PREFIX + key: json.dumps(value) for key, value in values.items()}


def read_metadata(path: str | Path) -> dict:
    """The `vda.*` metadata of an exported file, decoded."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {
        entry.key[len(METADATA_PREFIX) :]: json.loads(entry.value)
        for entry in proto.metadata_props
        if entry.key.startswith(METADATA_PREFIX)
    }


def _export(module: nn.Module, args: tuple, path: Path, names, dynamic_shapes, metadata) -> None:
    import onnx

    try:
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=names[0],
            output_names=names[1],
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    except Exception as error:  # the exporter's own error is long; its first line says enough
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        raise OnnxExportError(f"torch.onnx.export of {path.name} failed: {first}") from error
    program.save(str(path), external_data=False)
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _check(name: str, expected: list[np.ndarray], got: list[np.ndarray], tolerance: float) -> dict:
    worst = 0.0
    for e, g in zip(expected, got):
        if e.shape != g.shape:
            raise OnnxExportError(f"{name}: ONNX output shape {g.shape} != PyTorch {e.shape}")
        scale = float(np.ptp(e)) or float(np.abs(e).max()) or 1.0
        worst = max(worst, float(np.abs(e - g).max()) / scale)
    result = {"file": name, "max_diff_of_range": worst, "tolerance": tolerance}
    if not worst <= tolerance:
        raise OnnxExportError(
            f"{name}: ONNX Runtime differs from PyTorch by {worst:.2e} of the output range "
            f"(tolerance {tolerance:.0e}); the export is refused"
        )
    return result


def _sizes(settings: ExportSettings) -> list[tuple[int, int]]:
    sizes = [(settings.height, settings.width)]
    if settings.dynamic:
        second = settings.check_size or (settings.height, settings.width + 14 * 8)
        if second != sizes[0]:
            sizes.append(second)
    return sizes


def export_onnx(
    model: VideoDepthAnything, output: str | Path, settings: ExportSettings | None = None
) -> ExportReport:
    """Write NAME.onnx, NAME.encoder.onnx and NAME.head.onnx and verify each."""
    settings = settings or ExportSettings()
    for side in (settings.height, settings.width):
        if side % PATCH_SIZE:
            raise OnnxExportError(f"export size {side} is not a multiple of {PATCH_SIZE}")
    if settings.frames > model.config.num_frames:
        raise OnnxExportError(
            f"--frames {settings.frames} exceeds the model's {model.config.num_frames}-frame window"
        )
    model = model.cpu().eval()
    output = Path(output)
    stem = output.name[: -len(".onnx")] if output.name.endswith(".onnx") else output.name
    paths = {
        "whole": output.with_name(stem + ".onnx"),
        "encoder": output.with_name(stem + ".encoder.onnx"),
        "head": output.with_name(stem + ".head.onnx"),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    t, h, w = settings.frames, settings.height, settings.width
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    torch.manual_seed(0)
    frames = torch.randn(1, t, 3, h, w)
    with torch.no_grad():
        features = model.encode_frames(frames[0])
    maps = tuple(f.transpose(1, 2).reshape(t, f.shape[-1], gh, gw) for f in features)

    frames_dim = torch.export.Dim("n", min=1, max=1024)  # the engine encodes any batch
    dims = {}
    if settings.dynamic:
        grid_h = torch.export.Dim("grid_h", min=2, max=256)
        grid_w = torch.export.Dim("grid_w", min=2, max=256)
        dims = {"h": PATCH_SIZE * grid_h, "w": PATCH_SIZE * grid_w, "gh": grid_h, "gw": grid_w}
    taps = [f"feature{i}" for i in range(len(features))]
    specs = {
        "whole": (
            WholeWindow(model),
            (frames,),
            (["frames"], ["depth"]),
            {"frames": {3: dims["h"], 4: dims["w"]}} if dims else None,
        ),
        "encoder": (
            EncoderPart(model),
            (frames[0],),
            (["images"], taps),
            {"images": {0: frames_dim, **({2: dims["h"], 3: dims["w"]} if dims else {})}},
        ),
        "head": (
            HeadPart(model),
            maps,
            ([f"map{i}" for i in range(len(maps))], ["depth"]),
            {f"map{i}": {2: dims["gh"], 3: dims["gw"]} for i in range(4)} if dims else None,
        ),
    }
    report = ExportReport({k: str(v) for k, v in paths.items()}, dynamic=settings.dynamic)
    try:
        for part, (module, args, names, dynamic_shapes) in specs.items():
            try:
                _export(
                    module,
                    args,
                    paths[part],
                    names,
                    dynamic_shapes,
                    _metadata(model, settings, part),
                )
            except OnnxExportError as error:  # the exporter itself fails on dynamic H / W
                if not settings.dynamic:
                    raise
                raise OnnxExportError(str(error) + DYNAMIC_HINT) from error.__cause__
        for size in _sizes(settings):
            try:
                report.checks.extend(_verify(model, paths, t, *size, settings.tolerance))
            except OnnxExportError:
                raise
            except Exception as error:  # ONNX Runtime could not run the file at this size
                first = str(error).strip().splitlines()[0][:300]
                raise OnnxExportError(
                    f"ONNX Runtime could not run the export at {size[0]}x{size[1]}: {first}"
                    + (DYNAMIC_HINT if settings.dynamic else "")
                ) from error
    except Exception:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise
    return report


def _verify(model, paths, frames: int, height: int, width: int, tolerance: float) -> list[dict]:
    """Each file in ONNX Runtime vs PyTorch on one random window at height x width."""
    generator = torch.Generator().manual_seed(height * 7 + width)
    clip = torch.randn(1, frames, 3, height, width, generator=generator)
    gh, gw = height // PATCH_SIZE, width // PATCH_SIZE
    with torch.no_grad():
        whole = model(clip).numpy()
        features = model.encode_frames(clip[0])
        maps = [f.transpose(1, 2).reshape(frames, f.shape[-1], gh, gw) for f in features]
        head = model.decode(features, 1, frames, height, width)[0].numpy()
    size = f"{height}x{width}"
    checks = []
    session = _session(paths["whole"])
    got = session.run(None, {"frames": clip.numpy()})
    checks.append({**_check(f"{paths['whole'].name} at {size}", [whole], got, tolerance)})
    session = _session(paths["encoder"])
    got = session.run(None, {"images": clip[0].numpy()})
    expected = [f.numpy() for f in features]
    checks.append(_check(f"{paths['encoder'].name} at {size}", expected, got, tolerance))
    session = _session(paths["head"])
    got = session.run(None, {f"map{i}": m.numpy() for i, m in enumerate(maps)})
    checks.append(_check(f"{paths['head'].name} at {size}", [head], got, tolerance))
    return checks
