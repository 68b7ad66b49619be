"""The one manifest row type of `vda infer`, and the manifest merged from the rows.

`manifest.parquet` under the output prefix is the table of every listed
video's row (`rows.py` keeps each row durably as it finishes). It is built
incrementally: the driver writes the rows it receives to part files
(`_manifests/parts/`, every `manifest.merge_s` seconds or `merge_rows`
rows), and the end of a run compacts the last manifest, the parts and the
run's rows into a new `manifest.parquet` (and a copy per run under
`_manifests/`), then deletes the parts it merged. After a killed run only
the rows finished since its last part are read one by one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import (
    S3Settings,
    StorageError,
    join,
    open_output,
)
from ..storage.objects import delete

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
        """Field by field, lists copied (`dataclasses.asdict` recurses and deep-copies: a
        quarter of a core-ms a row, a fifth of the driver's CPU per video)."""
        return {
            name: list(value) if isinstance(value, list) else value
            for name in _FIELD_NAMES
            for value in (getattr(self, name),)
        }


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ManifestRow))


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


def manifest_table(rows: list[ManifestRow]) -> pa.Table:
    return pa.Table.from_pylist([r.to_dict() for r in rows], schema=MANIFEST_SCHEMA)


PARTS = "_manifests/parts"


class ManifestParts:
    """The driver's incremental merge: rows in, a part file every `merge_s` or `merge_rows`."""

    def __init__(
        self,
        output: str,
        settings: S3Settings | None = None,
        merge_s: float = 60.0,
        merge_rows: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.output, self.settings = output, settings
        self.merge_s, self.merge_rows, self.clock = merge_s, merge_rows, clock
        self.pending: list[ManifestRow] = []
        self.flushed_at = clock()
        self.written: list[str] = []

    def add(self, row: ManifestRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.merge_rows or self.clock() - self.flushed_at >= self.merge_s:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one part (best effort: the rows themselves are durable)."""
        self.flushed_at = self.clock()
        if not self.pending:
            return
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        uri = join(self.output, PARTS, name)
        try:
            with open_output(uri, self.settings) as handle:
                pq.write_table(manifest_table(self.pending), handle)
        except (StorageError, OSError):
            return  # kept pending: the next flush tries again
        self.written.append(uri)
        self.pending = []


def drop_parts(parts: Iterable[str], settings: S3Settings | None = None) -> None:
    """Delete parts merged into a written manifest (best effort: a leftover is re-merged)."""
    for uri in parts:
        with contextlib.suppress(StorageError):
            delete(uri, settings)
