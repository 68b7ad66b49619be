"""The one manifest row type of `vda infer`, its durable per-video records, and the merge.

Durable as videos finish: each committed or failed video leaves
`<output>/_manifests/rows/<video_id>.json`, written by whoever finished it
(the actor, or the stitch of a split video), so a job killed at any moment
leaves a record of everything committed so far. `manifest.parquet` is the
merge of those rows for the listed videos, written at the end of every run
(and a copy per run under `_manifests/`). A rerun decides what is done from
both (`committed_rows`): the listing of the rows folder, never of the whole
output prefix (an archive's outputs run to millions of PNGs), and the merge;
only rows newer than the merge are read one by one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import (
    S3Settings,
    StorageError,
    join,
    list_objects,
    open_input,
    open_output,
    read_bytes,
    resolve,
    stat,
)
from ..storage import conditional as cond

ROWS = "_manifests/rows"


@dataclass(slots=True)  # slots: a million-video plan holds one per done video
class ManifestRow:
    """One video: what was done, what it produced, and the signals to review it by."""

    video: str
    video_id: str
    status: str = "failed"  # done | failed
    error: str = ""
    processed: bool = True  # false: done by an earlier run, skipped by this one
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    seconds: float = 0.0  # wall time of this video's processing (segments: summed)
    frames_per_second: float = 0.0
    output: str = ""
    files: list[str] = field(default_factory=list)
    model_size: str = ""
    checkpoint_sha256: str = ""
    precision: str = ""
    segments: int = 0  # 0: one actor did the whole video
    attempts: int = 0
    node: str = ""  # the Ray node that ran the video (a split video's: its stitch's)
    scene_cuts: list[int] = field(default_factory=list)  # first frames of new shots (scene_cuts)
    # quality signals (see quality.py)
    windows: int = 0
    scale_median: float = 0.0
    scale_spread: float = 0.0
    scale_max_jump: float = 0.0
    shift_spread: float = 0.0
    shift_max_jump: float = 0.0
    fit_residual_max: float = 0.0
    zero_share: float = 0.0
    nonfinite_share: float = 0.0
    outlier: bool = False
    outlier_reasons: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestRow:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _plain(v) for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


# the Parquet schema follows the dataclass (annotations are strings here: postponed evaluation)
_ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "list[str]": pa.list_(pa.string()),
    "list[int]": pa.list_(pa.int64()),
}
MANIFEST_SCHEMA = pa.schema([(f.name, _ARROW[f.type]) for f in dataclasses.fields(ManifestRow)])


def row_uri(output: str, video_id: str) -> str:
    return join(output, ROWS, f"{video_id}.json")


class AlreadyCommitted(StorageError):
    """The video has a done row already: no video is committed twice."""


def write_row(output: str, row: ManifestRow, settings: S3Settings | None = None) -> None:
    """The durable row, written create-only (S3 `If-None-Match: *`, locally `O_EXCL`).

    A failed row of an earlier attempt or run is replaced only if it is still
    the version read (`If-Match`); a done row is never replaced: AlreadyCommitted.
    """
    uri, data = row_uri(output, row.video_id), json.dumps(row.to_dict()).encode()
    for _ in range(3):  # each round loses only to another writer's change
        try:
            cond.create(uri, data, settings)
            return
        except cond.PreconditionFailed:
            pass
        existing = cond.read(uri, settings)
        if existing is None:
            continue
        with contextlib.suppress(ValueError, TypeError):
            if json.loads(existing.data).get("status") == "done":
                raise AlreadyCommitted(f"{row.video_id} is committed already: its row stands")
        try:
            cond.replace(uri, data, existing.etag, settings)
            return
        except cond.PreconditionFailed:
            continue
    raise AlreadyCommitted(f"{row.video_id}: its row kept changing under this writer")


def read_row(output: str, video_id: str, settings: S3Settings | None = None) -> ManifestRow | None:
    """One video's durable row, or None when there is none (or it cannot be read whole)."""
    try:
        data = read_bytes(row_uri(output, video_id), settings)
    except StorageError as error:
        if "does not exist" in str(error):
            return None
        raise
    try:
        return ManifestRow.from_dict(json.loads(data))
    except (ValueError, TypeError):
        return None  # a torn or foreign file: the video is redone


def committed_rows(
    output: str, video_ids: set[str], settings: S3Settings | None = None, threads: int = 16
) -> dict[str, ManifestRow]:
    """The durable rows of these videos, for about 2 requests per 1,000 videos.

    The listing of the rows (1,000 keys a request) says which videos have
    one; `manifest.parquet`, the merge written at the end of every run, holds
    the rows as they were then. Only a row written after that merge (by a run
    that was killed, or a stitch that finished late) is read on its own: one
    GET each, `threads` at a time.
    """
    base = resolve(join(output, ROWS), settings)[1].rstrip("/") + "/"
    listed: dict[str, float] = {}
    for item in list_objects(join(output, ROWS), (".json",), settings):
        path = item.uri.split("://", 1)[-1]
        video_id = path[len(base) :].removesuffix(".json") if path.startswith(base) else ""
        if video_id in video_ids:
            listed[video_id] = item.mtime
    merged, merged_at = _merged_rows(output, settings) if listed else ({}, 0.0)
    rows = {
        video_id: merged[video_id]
        for video_id, mtime in listed.items()
        if video_id in merged and mtime < merged_at  # S3 times are whole seconds: strictly older
    }
    newer = [video_id for video_id in listed if video_id not in rows]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for video_id, row in zip(newer, pool.map(lambda v: read_row(output, v, settings), newer)):
            if row is not None:
                rows[video_id] = row
    return rows


def _merged_rows(output: str, settings: S3Settings | None) -> tuple[dict[str, ManifestRow], float]:
    """The rows of the last `manifest.parquet` and when it was written (none: empty, 0)."""
    uri = join(output, "manifest.parquet")
    info = stat(uri, settings)
    if info is None:
        return {}, 0.0
    try:
        with open_input(uri, settings) as handle:
            table = pq.read_table(handle)
    except Exception:  # torn or foreign: every row is read on its own instead
        return {}, 0.0
    return {r["video_id"]: ManifestRow.from_dict(r) for r in table.to_pylist()}, info.mtime


def write_manifest(output: str, rows: list[ManifestRow], settings: S3Settings | None = None) -> str:
    table = manifest_table(rows)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for uri in (
        join(output, "_manifests", f"manifest-{stamp}.parquet"),
        join(output, "manifest.parquet"),
    ):
        with open_output(uri, settings) as handle:
            pq.write_table(table, handle)
    return join(output, "manifest.parquet")


def manifest_table(rows: list[ManifestRow]) -> pa.Table:
    return pa.Table.from_pylist([r.to_dict() for r in rows], schema=MANIFEST_SCHEMA)
