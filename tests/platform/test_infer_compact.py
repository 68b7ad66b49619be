"""Compacting the manifest from its merges as Arrow tables: which row of a video wins."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from vda.platform.infer.compact import compact, conform
from vda.platform.infer.manifest import MANIFEST_SCHEMA, PARTS, ManifestRow, manifest_table


def _row(video_id: str, status: str = "done", frames: int = 0) -> ManifestRow:
    return ManifestRow(f"in/{video_id}.mp4", video_id, status=status, frames=frames, files=["f"])


def _frames(table: pa.Table) -> dict[str, int]:
    return dict(zip(table["video_id"].to_pylist(), table["frames"].to_pylist(), strict=True))


def _part(tmp_path, name: str, rows: list[ManifestRow]) -> str:
    folder = tmp_path / PARTS
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(manifest_table(rows), folder / name)
    return str(folder / name)


def test_an_earlier_row_counts_only_with_the_status_its_listing_shows_and_later_wins(tmp_path):
    pq.write_table(
        manifest_table([_row("a", frames=1), _row("b", "failed", 2), _row("c", frames=3)]),
        tmp_path / "manifest.parquet",
    )
    _part(tmp_path, "part-1.parquet", [_row("a", "failed", 10), _row("b", frames=20)])
    _part(tmp_path, "part-2.parquet", [_row("c", frames=30), _row("z", frames=9)])
    wanted = {"a": ("done", ""), "b": ("failed", ""), "c": ("unknown", ""), "d": ("done", "")}
    table, parts = compact(str(tmp_path), wanted)
    # a's later row failed and b's is done, but their durable rows say otherwise; c's later
    # row wins; d is in no merge; z is not wanted
    assert _frames(table) == {"a": 1, "b": 2, "c": 30}
    assert table["video_id"].to_pylist() == ["a", "b", "c"] and len(parts) == 2
    assert table.schema == MANIFEST_SCHEMA and not any(table["processed"].to_pylist())


def test_this_run_s_rows_all_count_and_are_marked_processed(tmp_path):
    pq.write_table(manifest_table([_row("a", frames=1)]), tmp_path / "manifest.parquet")
    mine = _part(tmp_path, "part-9.parquet", [_row("x", "failed", 0), _row("x", frames=5)])
    table, _ = compact(
        str(tmp_path), {"a": ("done", "")}, ours=[mine], pending=[_row("y", "failed", 7)]
    )
    assert _frames(table) == {"a": 1, "x": 5, "y": 7}  # x: its later row in the part
    processed = dict(zip(table["video_id"].to_pylist(), table["processed"].to_pylist()))
    assert processed == {"a": False, "x": True, "y": True}


def test_a_manifest_of_an_older_schema_is_read_with_defaults(tmp_path):
    old = pa.table({"video": ["in/x.mp4"], "video_id": ["x"], "status": ["done"], "gone": [1]})
    pq.write_table(old, tmp_path / "manifest.parquet")
    table, parts = compact(str(tmp_path), {"x": ("done", "")})
    assert table.schema == MANIFEST_SCHEMA and parts == []
    expected = ManifestRow("in/x.mp4", "x", "done", processed=False)
    assert ManifestRow.from_dict(table.to_pylist()[0]) == expected
    assert conform(old).column_names == MANIFEST_SCHEMA.names


def test_rows_no_merge_holds_are_read_one_by_one(tmp_path):
    pq.write_table(manifest_table([_row("a", frames=1)]), tmp_path / "manifest.parquet")
    read = []

    def read_one(uri: str) -> ManifestRow | None:
        read.append(uri)
        return _row("b", frames=7) if uri == "row-b" else None

    wanted = {"a": ("done", "row-a"), "b": ("done", "row-b"), "c": ("done", "row-c")}
    table, _ = compact(str(tmp_path), wanted, read_one=read_one)
    assert _frames(table) == {"a": 1, "b": 7} and sorted(read) == ["row-b", "row-c"]


def test_nothing_to_merge_is_an_empty_manifest(tmp_path):
    table, parts = compact(str(tmp_path), {})
    assert table.num_rows == 0 and table.schema == MANIFEST_SCHEMA and parts == []
