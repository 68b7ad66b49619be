"""The end of a run: `manifest.parquet` compacted from the part files, as Arrow tables.

A million-video job must not end by holding a million rows as Python
objects: the rows this run committed are in its part files already
(`manifest.ManifestParts`), the earlier runs' in the last manifest and
their parts. Here they are read as tables, the wanted row of each video is
picked with Arrow's join and group-by (later merges win), and only rows no
merge holds (finished after a killed run's last part) are read one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..storage import S3Settings, StorageError, join, list_objects, open_input
from .manifest import MANIFEST_SCHEMA, PARTS, ManifestRow, manifest_table

_ORDER = "_order"  # a row's place among every merge read: a later one wins


def conform(table: pa.Table) -> pa.Table:
    """A table in today's schema: a manifest written before a column existed gets the
    column's default, a column no longer written is dropped."""
    defaults = ManifestRow("", "").to_dict()
    columns = []
    for field in MANIFEST_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.array([defaults[field.name]] * table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=MANIFEST_SCHEMA)


def read_merge(uri: str, settings: S3Settings | None = None) -> pa.Table | None:
    """One merge (a manifest or a part file); None when it is missing, torn or foreign (its
    rows are then read on their own)."""
    try:
        with open_input(uri, settings) as handle:
            return conform(pq.read_table(handle))
    except StorageError:
        return None
    except Exception:
        return None


def part_uris(output: str, settings: S3Settings | None = None) -> list[str]:
    """The part files under the output, oldest first (their names start with their time)."""
    return sorted(o.uri for o in list_objects(join(output, PARTS), (".parquet",), settings))


def latest_per_video(tables: Iterable[pa.Table]) -> pa.Table:
    """Each video's row from the last table that holds it."""
    numbered, offset = [], 0
    for table in tables:
        order = pa.array(range(offset, offset + table.num_rows), pa.int64())
        numbered.append(table.append_column(_ORDER, order))
        offset += table.num_rows
    if not numbered:
        return MANIFEST_SCHEMA.empty_table()
    merged = pa.concat_tables(numbered)
    last = merged.select(["video_id", _ORDER]).group_by("video_id").aggregate([(_ORDER, "max")])
    kept = merged.filter(pc.is_in(merged[_ORDER], value_set=last[f"{_ORDER}_max"]))
    return kept.drop_columns([_ORDER])


def merged_table(
    output: str,
    wanted: dict[str, tuple[str, str]],
    settings: S3Settings | None = None,
    read_one: Callable[[str], ManifestRow | None] | None = None,
    threads: int = 16,
) -> tuple[pa.Table, list[str]]:
    """The rows of `wanted` ({video id: (status, row URI)} from a listing) and the part
    files they were merged from.

    The last `manifest.parquet` and the part files (a GET each) hold most of
    them: a video's row is the latest merged one whose status is the listed
    one ("unknown": any). A row no merge holds so is read with `read_one`,
    `threads` at a time; None: left out.
    """
    parts = part_uris(output, settings)
    tables = [
        t
        for t in (read_merge(u, settings) for u in [join(output, "manifest.parquet"), *parts])
        if t is not None
    ]
    found = latest_matching(tables, wanted)
    if read_one is not None:
        have = set(found["video_id"].to_pylist())
        missing = [(v, uri) for v, (_, uri) in wanted.items() if v not in have]
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            read = [r for r in pool.map(lambda m: read_one(m[1]), missing) if r is not None]
        if read:
            found = pa.concat_tables([found, manifest_table(read)])
    return found, parts


def latest_matching(tables: list[pa.Table], wanted: dict[str, tuple[str, str]]) -> pa.Table:
    """Each wanted video's latest row whose status is the listed one."""
    ids = pa.array(list(wanted), pa.string())
    listed = pa.array([status for status, _ in wanted.values()], pa.string())
    matching = []
    for table in tables:
        where = pc.index_in(table["video_id"], value_set=ids)  # null: not wanted
        status = pc.take(listed, where)
        keep = pc.and_(
            pc.is_valid(where),
            pc.or_(pc.equal(status, table["status"]), pc.equal(status, "unknown")),
        )
        matching.append(table.filter(pc.fill_null(keep, False)))
    return latest_per_video(matching)
