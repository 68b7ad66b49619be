"""Compacting the manifest from its merges: which row of a video wins, what is counted and
flagged, and that the manifest is streamed merge by merge."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from vda.platform.infer.compact import compact, conform, read_merge
from vda.platform.infer.manifest import MANIFEST_SCHEMA, PARTS, ManifestRow, manifest_table


def _row(video_id: str, status: str = "done", frames: int = 0, **signals) -> ManifestRow:
    row = ManifestRow(f"in/{video_id}.mp4", video_id, status=status, frames=frames, files=["f"])
    for name, value in signals.items():
        setattr(row, name, value)
    return row


def _part(tmp_path, name: str, rows: list[ManifestRow]) -> str:
    folder = tmp_path / PARTS
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(manifest_table(rows), folder / name)
    return str(folder / name)


def _manifest(tmp_path, rows: list[ManifestRow]) -> None:
    pq.write_table(manifest_table(rows), tmp_path / "manifest.parquet")


def _column(uri: str, name: str) -> dict:
    table = read_merge(uri)
    return dict(zip(table["video_id"].to_pylist(), table[name].to_pylist(), strict=True))


def test_an_earlier_row_counts_only_with_the_status_its_listing_shows_and_later_wins(tmp_path):
    _manifest(tmp_path, [_row("a", frames=1), _row("b", "failed", 2), _row("c", frames=3)])
    _part(tmp_path, "part-1.parquet", [_row("a", "failed", 10), _row("b", frames=20)])
    _part(tmp_path, "part-2.parquet", [_row("c", frames=30), _row("z", frames=9)])
    wanted = {"a": ("done", ""), "b": ("failed", ""), "c": ("unknown", ""), "d": ("done", "")}
    done = compact(str(tmp_path), wanted)
    # a's later row failed and b's is done, but their durable rows say otherwise; c's later
    # row wins; d is in no merge; z is not wanted
    assert _column(done.manifest, "frames") == {"a": 1, "b": 2, "c": 30}
    assert len(done.parts) == 2 and read_merge(done.manifest).schema == MANIFEST_SCHEMA
    assert done.counts == {"done": 0, "skipped": 2, "failed": 1, "frames": 0}
    # one row group per merge read, in the merges' order: streamed, not held
    assert pq.ParquetFile(done.manifest).metadata.num_row_groups == 2


def test_this_run_s_rows_all_count_and_are_marked_processed(tmp_path):
    _manifest(tmp_path, [_row("a", frames=1)])
    mine = _part(tmp_path, "part-9.parquet", [_row("x", "failed", 0), _row("x", frames=5)])
    done = compact(
        str(tmp_path), {"a": ("done", "")}, ours=[mine], pending=[_row("y", "failed", 7)]
    )
    assert _column(done.manifest, "frames") == {"a": 1, "x": 5, "y": 7}  # x: its later row
    assert _column(done.manifest, "processed") == {"a": False, "x": True, "y": True}
    assert done.counts == {"done": 1, "skipped": 1, "failed": 1, "frames": 5}


def test_outliers_are_flagged_in_the_manifest_and_returned_worst_first(tmp_path):
    rows = [_row(f"v{i}", scale_max_jump=0.01 + 0.001 * i) for i in range(8)]
    rows += [_row("jumpy", scale_max_jump=0.6), _row("flat", zero_share=0.9)]
    rows.append(_row("bad", "failed", zero_share=1.0))  # failed videos are not ranked
    mine = _part(tmp_path, "part-1.parquet", rows[:5])
    pending = rows[5:]
    done = compact(str(tmp_path), {}, ours=[mine], pending=pending)
    assert [r.video_id for r in done.outliers] == ["flat", "jumpy"]
    assert done.outliers[0].outlier_reasons == "zero depth in 90% of pixels"
    flagged = _column(done.manifest, "outlier")
    assert flagged == {r.video_id: r.video_id in ("jumpy", "flat") for r in rows}
    assert _column(done.manifest, "outlier_reasons")["bad"] == ""


def test_a_manifest_of_an_older_schema_is_read_with_defaults(tmp_path):
    old = pa.table({"video": ["in/x.mp4"], "video_id": ["x"], "status": ["done"], "gone": [1]})
    pq.write_table(old, tmp_path / "manifest.parquet")
    done = compact(str(tmp_path), {"x": ("done", "")})
    expected = ManifestRow("in/x.mp4", "x", "done", processed=False)
    assert [ManifestRow.from_dict(r) for r in read_merge(done.manifest).to_pylist()] == [expected]
    assert conform(old).column_names == MANIFEST_SCHEMA.names


def test_rows_no_merge_holds_are_read_one_by_one(tmp_path):
    _manifest(tmp_path, [_row("a", frames=1)])
    read = []

    def read_one(uri: str) -> ManifestRow | None:
        read.append(uri)
        return _row("b", frames=7) if uri == "row-b" else None

    wanted = {"a": ("done", "row-a"), "b": ("done", "row-b"), "c": ("done", "row-c")}
    done = compact(str(tmp_path), wanted, read_one=read_one)
    assert _column(done.manifest, "frames") == {"a": 1, "b": 7}
    assert sorted(read) == ["row-b", "row-c"]


def test_nothing_to_merge_is_an_empty_manifest(tmp_path):
    done = compact(str(tmp_path), {})
    table = read_merge(done.manifest)
    assert table.num_rows == 0 and table.schema == MANIFEST_SCHEMA and done.outliers == []
