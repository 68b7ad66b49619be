"""Checkpoint adapters: official VDA / metric VDA, Depth Anything V2, timm DINOv2, and ours.

The network's own parameter names are the official ones, so an official VDA
checkpoint is loaded strictly as it is, and exporting is the state dict minus
the parts the official format has no place for (the diff-CNN branch). Every
load validates keys and shapes first and refuses a mismatch with a message that
names the keys: a silently skipped key is a model that quietly is not the one
the user asked for.

Files are read with `torch.load(..., weights_only=True)`: a checkpoint from an
archive is untrusted input, and pickles execute code.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any, Literal

import torch

from .config import ENCODERS, ModelConfig
from .network import VideoDepthAnything

CheckpointKind = Literal["vda", "official", "dav2", "timm"]
StateDict = dict[str, torch.Tensor]
Source = str | Path | IO[bytes] | Mapping[str, Any]

OWN_FORMAT = "vda-checkpoint"
OWN_FORMAT_VERSION = 1
_LISTED = 12  # how many offending keys an error message names


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: the message names the keys."""


def read_checkpoint(source: Source) -> Mapping[str, Any]:
    """The checkpoint as a mapping (safetensors, or torch with weights_only=True)."""
    return _read(source)


def _read(source: Source) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with path.open("rb") as handle:
            return _torch_load(handle, str(path))
    return _torch_load(source, getattr(source, "name", "<stream>"))


def _torch_load(handle: IO[bytes], name: str) -> Mapping[str, Any]:
    if not handle.seekable():
        handle = io.BytesIO(handle.read())
    try:
        loaded = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for bad files
        # torch's messages run to several paragraphs; the first line says what happened
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"cannot read checkpoint {name!r} (not a PyTorch checkpoint loadable with "
            f"weights_only=True): {reason}"
        ) from error
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"checkpoint {name!r} holds a {type(loaded).__name__}, not a dict")
    return loaded


def _unwrap(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept the usual wrappers ({'model': sd}, {'state_dict': sd}) around a state dict."""
    for key in ("model", "state_dict", "model_state_dict"):
        inner = checkpoint.get(key)
        if (
            isinstance(inner, Mapping)
            and all(isinstance(k, str) for k in inner)
            and any(isinstance(v, torch.Tensor) for v in inner.values())
        ):
            return inner
    return checkpoint


def detect_kind(checkpoint: Mapping[str, Any]) -> CheckpointKind:
    """Which layout a loaded checkpoint is in."""
    if checkpoint.get("format") == OWN_FORMAT:
        return "vda"
    if isinstance(checkpoint.get("model_config"), Mapping) and isinstance(
        checkpoint.get("model"), Mapping
    ):
        return "vda"  # a `vda train` checkpoint: model state + model config (+ optimizer...)
    state = _unwrap(checkpoint)
    keys = list(state)
    if any(k.startswith("depth_head.") for k in keys):
        return "dav2"
    if any(k.startswith("head.") for k in keys) and any(k.startswith("pretrained.") for k in keys):
        return "official"
    if "pos_embed" in state and any(k.startswith("blocks.") for k in keys):
        return "timm"
    raise CheckpointError(
        "unrecognised checkpoint layout (expected an official VDA / Depth Anything V2 "
        f"state dict, timm DINOv2 weights, or a vda checkpoint); first keys: {keys[:5]}"
    )


def infer_size(state: Mapping[str, torch.Tensor], prefix: str = "pretrained.") -> str:
    """The model size from the encoder width (pos_embed's channel count)."""
    key = f"{prefix}pos_embed"
    if key not in state:
        raise CheckpointError(f"cannot infer the model size: no {key!r} in the checkpoint")
    width = state[key].shape[-1]
    for size, spec in ENCODERS.items():
        if spec.embed_dim == width:
            return size
    raise CheckpointError(f"no model size has an encoder of width {width}")


def _describe(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return shown + more


def check_state_dict(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    what: str,
    allow_missing: tuple[str, ...] = (),
) -> None:
    """Raise CheckpointError naming every missing, unexpected or mis-shaped key."""
    missing = [k for k in expected if k not in given and not k.startswith(allow_missing)]
    unexpected = [k for k in given if k not in expected]
    mis_shaped = [
        f"{k} {tuple(given[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatches: {_describe(mis_shaped)}")
    if problems:
        raise CheckpointError(f"{what} does not fit the model: " + "; ".join(problems))


def _load_strict(
    model: VideoDepthAnything,
    state: Mapping[str, torch.Tensor],
    what: str,
    allow_missing: tuple[str, ...] = (),
) -> None:
    expected = model.state_dict()
    check_state_dict(expected, state, what, allow_missing)
    merged = dict(expected)
    merged.update({k: v for k, v in state.items() if k in expected})
    model.load_state_dict(merged, strict=True)


def official_state_dict(model: VideoDepthAnything) -> StateDict:
    """The model in the official VDA layout (the diff-CNN branch has no place there)."""
    if model.diff_cnn is not None:
        trained = any(p.abs().sum() > 0 for p in model.diff_cnn.projections.parameters())
        if trained:
            raise CheckpointError(
                "this model's diff-CNN branch is trained; the official layout cannot hold it. "
                "Save it with save_checkpoint instead."
            )
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if not k.startswith("diff_cnn.")
    }


def export_official(model: VideoDepthAnything, path: str | Path) -> None:
    """Write an official-layout `.pth` that the official code loads with strict=True."""
    torch.save(official_state_dict(model), str(path))


def save_checkpoint(
    model: VideoDepthAnything,
    target: str | Path | IO[bytes],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Our own format: the state dict, the model config that builds it, and extra metadata.

    Only tensors, plain containers and primitives go in, so it reads back with
    `weights_only=True`.
    """
    payload = {
        "format": OWN_FORMAT,
        "version": OWN_FORMAT_VERSION,
        "model_config": _config_to_dict(model.config),
        "state_dict": model.state_dict(),
        "extra": dict(extra or {}),
    }
    torch.save(payload, target if not isinstance(target, Path) else str(target))


def _config_to_dict(config: ModelConfig) -> dict[str, Any]:
    data = asdict(config)
    data["diff_cnn_channels"] = list(config.diff_cnn_channels)
    return data


def _config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"checkpoint model_config has unknown fields: {unknown}")
    return ModelConfig(**dict(data))


def load_weights(
    model: VideoDepthAnything,
    source: Source,
    kind: CheckpointKind | None = None,
) -> CheckpointKind:
    """Load weights of any supported layout into an existing model, strictly.

    - `official`: every key, `pos_encoder.pe` buffers included.
    - `dav2`: encoder + plain DPT head; the temporal modules and any diff-CNN
      keep their (identity) initialisation.
    - `timm`: encoder only (`mask_token` may be absent).
    - `vda`: our own checkpoint; the stored model config must match.
    """
    checkpoint = _read(source)
    kind = kind or detect_kind(checkpoint)
    own = model.state_dict()
    diff_keys = tuple(k for k in own if k.startswith("diff_cnn."))
    if kind == "vda":
        stored = _config_from_dict(checkpoint["model_config"])
        if stored.size != model.config.size or stored.temporal_diff != model.config.temporal_diff:
            raise CheckpointError(
                f"checkpoint is a {stored.size}/{stored.temporal_diff} model, "
                f"the model is {model.config.size}/{model.config.temporal_diff}"
            )
        state = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint["model"]
        _load_strict(model, state, "vda checkpoint")
    elif kind == "official":
        _load_strict(model, _unwrap(checkpoint), "official VDA checkpoint", diff_keys)
    elif kind == "dav2":
        state = {
            ("head." + k[len("depth_head.") :] if k.startswith("depth_head.") else k): v
            for k, v in _unwrap(checkpoint).items()
        }
        temporal = ("head.motion_modules.", "diff_cnn.")
        _load_strict(model, state, "Depth Anything V2 checkpoint", temporal)
    elif kind == "timm":
        state = {f"pretrained.{k}": v for k, v in _unwrap(checkpoint).items()}
        # timm keeps classifier/pooling entries the depth model has no use for.
        state = {
            k: v
            for k, v in state.items()
            if not k.startswith(("pretrained.head.", "pretrained.fc_norm."))
        }
        not_encoder = tuple(k for k in own if not k.startswith("pretrained."))
        _load_strict(model, state, "timm DINOv2 weights", (*not_encoder, "pretrained.mask_token"))
    else:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}")
    return kind


def load_checkpoint(
    source: Source,
    config: ModelConfig | None = None,
    *,
    metric: bool | None = None,
    **overrides: Any,
) -> VideoDepthAnything:
    """Build the model a checkpoint describes and load it.

    The size is read from the checkpoint (or from `config`); `metric` defaults
    to True when the file name (or a stream's `name`) starts with `metric_`, as
    the official metric checkpoints are named. Extra keyword arguments override config fields
    (e.g. `temporal_diff="diff_cnn"` to start a diff-CNN model from an official
    checkpoint).
    """
    checkpoint = _read(source)
    kind = detect_kind(checkpoint)
    if kind == "vda":
        base = _config_from_dict(checkpoint["model_config"])
    elif config is not None:
        base = config
    else:
        prefix = "" if kind == "timm" else "pretrained."
        base = ModelConfig(size=infer_size(_unwrap(checkpoint), prefix))  # type: ignore[arg-type]
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "")
    if metric is None and isinstance(name, str) and name:
        metric = is_metric_name(name) or None
    if metric is not None:
        overrides.setdefault("metric", metric)
    model = _uninitialised(base, overrides, kind)
    load_weights(model, checkpoint, kind)
    return model


def _uninitialised(
    config: ModelConfig, overrides: dict[str, Any], kind: CheckpointKind
) -> VideoDepthAnything:
    """The model to load into. Where the checkpoint sets every parameter and buffer (ours,
    or an official one for a model without a diff-CNN), its storage is allocated but not
    initialised: a random initialisation that the load overwrites costs about as much as
    the load itself (a second of CPU for vits here), on every actor start. Otherwise (the
    temporal modules of a DAv2 start, say) they keep their initialisation."""
    if kind not in ("vda", "official"):
        return VideoDepthAnything(config, **overrides)
    with torch.device("meta"):
        shape = VideoDepthAnything(config, **overrides)
    if shape.diff_cnn is not None and kind == "official":  # the official layout lacks it
        return VideoDepthAnything(config, **overrides)
    return shape.to_empty(device="cpu")  # every value is set by the strict load that follows


def is_metric_name(uri: str) -> bool:
    """The official release names its metric checkpoints `metric_video_depth_anything_*.pth`."""
    return Path(uri.rsplit("/", 1)[-1]).name.startswith("metric_")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash recorded with every output, so results name the exact weights."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
