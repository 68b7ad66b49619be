"""What a finished unit of work leaves behind: its manifest row and its metadata.json."""

from __future__ import annotations

from typing import Any

from vda.model.inference import WindowConfig

from ..storage import join
from ..video.metadata import run_metadata
from ..video.process import VideoResult
from .config import InferConfig
from .manifest import ManifestRow
from .messages import Unit
from .quality import signals
from .rows import read_row


def video_metadata(
    config: InferConfig, model: dict[str, Any], alignments, **extra: Any
) -> dict[str, Any]:
    """What ran, for metadata.json (the schema `vda depth` writes too)."""
    return run_metadata(
        model_size=model["size"],
        metric=model["metric"],
        checkpoint=config.checkpoint,
        checkpoint_sha256=model["sha256"],
        input_size=config.input_size,
        precision=model["precision"],
        device=model["device"],
        max_res=config.decode.max_res,
        target_fps=config.decode.target_fps,
        max_len=config.decode.max_len,
        window=WindowConfig().length,
        speed=config.speed,
        alignments=alignments,
        checkpoint_source=model.get("source", ""),
        checkpoint_license=model.get("license"),
        **extra,
    )


def base_row(unit: Unit, config: InferConfig, model: dict[str, Any]) -> ManifestRow:
    return ManifestRow(
        video=unit.video,
        video_id=unit.video_id,
        output=join(config.output, unit.video_id),
        model_size=model["size"],
        checkpoint_sha256=model["sha256"],
        precision=model["precision"],
    )


def finish_row(row: ManifestRow, produced: VideoResult, info, alignments, seconds: float) -> None:
    row.status = "done"
    row.frames = produced.frames
    row.fps, row.width, row.height = info.fps, info.width, info.height
    row.seconds = seconds
    row.frames_per_second = produced.frames / seconds if seconds > 0 else 0.0
    row.scene_cuts = list(produced.scene_cuts)
    if produced.shot_alignments is not None:  # every shot's windows, not the last shot's
        alignments = produced.shot_alignments
    for key, value in signals(alignments, produced.counts).items():
        setattr(row, key, value)


def committed_row(config: InferConfig, video_id: str) -> ManifestRow | None:
    row = read_row(config.output, video_id, config.s3)
    return row if row is not None and row.status == "done" else None
