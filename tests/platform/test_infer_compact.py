"""Compacting the manifest from its merges as Arrow tables: which row of a video wins."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from vda.platform.infer.compact import conform, latest_matching, latest_per_video, merged_table
from vda.platform.infer.manifest import MANIFEST_SCHEMA, ManifestRow, manifest_table


def _row(video_id: str, status: str = "done", frames: int = 0) -> ManifestRow:
    return ManifestRow(f"in/{video_id}.mp4", video_id, status=status, frames=frames, files=["f"])


def _frames(table: pa.Table) -> dict[str, int]:
    return dict(zip(table["video_id"].to_pylist(), table["frames"].to_pylist(), strict=True))


def test_the_latest_merge_holding_a_video_wins():
    first = manifest_table([_row("a", frames=1), _row("b", frames=2)])
    second = manifest_table([_row("a", frames=10), _row("c", frames=3)])
    assert _frames(latest_per_video([first, second])) == {"a": 10, "b": 2, "c": 3}
    assert latest_per_video([]).schema == MANIFEST_SCHEMA


def test_a_merged_row_counts_only_with_the_status_its_listing_shows():
    older = manifest_table([_row("a", frames=1), _row("b", "failed", 2), _row("c", frames=3)])
    newer = manifest_table([_row("a", "failed", 10), _row("b", frames=20), _row("z", frames=9)])
    wanted = {"a": ("done", ""), "b": ("failed", ""), "c": ("unknown", ""), "d": ("done", "")}
    # a's newer row failed and b's newer row is done, but the durable rows say otherwise;
    # d is in no merge; z is not wanted
    assert _frames(latest_matching([older, newer], wanted)) == {"a": 1, "b": 2, "c": 3}


def test_a_manifest_of_an_older_schema_is_read_with_defaults(tmp_path):
    old = pa.table({"video": ["in/x.mp4"], "video_id": ["x"], "status": ["done"], "gone": [1]})
    pq.write_table(old, tmp_path / "manifest.parquet")
    table, parts = merged_table(str(tmp_path), {"x": ("done", "")})
    assert table.schema == MANIFEST_SCHEMA and parts == []
    assert ManifestRow.from_dict(table.to_pylist()[0]) == ManifestRow("in/x.mp4", "x", "done")
    assert conform(old).column_names == MANIFEST_SCHEMA.names


def test_rows_no_merge_holds_are_read_one_by_one(tmp_path):
    pq.write_table(manifest_table([_row("a", frames=1)]), tmp_path / "manifest.parquet")
    read = []

    def read_one(uri: str) -> ManifestRow | None:
        read.append(uri)
        return _row("b", frames=7) if uri == "row-b" else None

    wanted = {"a": ("done", "row-a"), "b": ("done", "row-b"), "c": ("done", "row-c")}
    table, _ = merged_table(str(tmp_path), wanted, read_one=read_one)
    assert _frames(table) == {"a": 1, "b": 7} and sorted(read) == ["row-b", "row-c"]
