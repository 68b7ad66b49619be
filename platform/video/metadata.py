"""The run half of an output folder's `metadata.json`: one schema for `vda depth` and `vda infer`.

An output folder describes itself in two halves written into one flat JSON
object: what the frames are (source, size, frame numbers, depth kind and
files: `DepthOutputs.close` writes those) and what produced them (this
module: model, checkpoint and its hash, the settings that change a depth map,
the window alignments). Both jobs call `run_metadata`, so a folder reads the
same whichever job wrote it. `metadata_version` counts schema changes:

- 1 (before versioning): `vda depth` nested its settings under "settings",
  the bulk job wrote them flat.
- 2: flat, the keys below, for both jobs.
- 3: `mode`: "offline" (the windowed engine) or "online" (`vda depth --online`,
  whose folders also carry `online`: frames dropped, latency p50 / p95).
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

METADATA_VERSION = 3


def run_metadata(
    *,
    model_size: str,
    metric: bool,
    checkpoint: str,
    checkpoint_sha256: str,
    input_size: int,
    precision: str,
    device: str,
    max_res: int,
    target_fps: float,
    max_len: int,
    window: int,
    speed: Any,
    alignments: list[Any],
    engine: str = "torch",
    checkpoint_source: str = "",
    checkpoint_license: str | None = None,
    mode: str = "offline",
    **extra: Any,
) -> dict[str, Any]:
    """What ran. `checkpoint` is as the job was given it (a released name, a path, a URI),
    `checkpoint_source` the file read; `precision` and `device` are what computed, not what
    was asked for (a CPU run asked for fp16 computes fp32); `alignments` are the per-window
    fits (dataclasses or dicts) in window order."""
    return {
        "metadata_version": METADATA_VERSION,
        "model_size": model_size,
        "metric": metric,
        "checkpoint": checkpoint,
        "checkpoint_sha256": checkpoint_sha256,
        "checkpoint_source": checkpoint_source or checkpoint,  # the file read (hf:// for names)
        "checkpoint_license": checkpoint_license,  # a released model's; None: the user's own
        "input_size": input_size,
        "precision": precision,
        "device": device,
        "engine": engine,
        "mode": mode,
        "window": window,
        "speed": asdict(speed) if is_dataclass(speed) else dict(speed),
        "decode": {"max_res": max_res, "target_fps": target_fps, "max_len": max_len},
        "alignments": [asdict(a) if is_dataclass(a) else dict(a) for a in alignments],
        **extra,
    }
