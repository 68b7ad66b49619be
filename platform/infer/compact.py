"""The end of a run: `manifest.parquet` compacted from the part files, as Arrow tables.

A million-video job must not end by holding a million rows as Python
objects: the rows this run committed are in its part files already
(`manifest.ManifestParts`), the earlier runs' in the last manifest and
their parts. Each merge is read as a table; which row of a video wins is
decided on two columns alone (the video id and the row's place among every
merge read: a later merge wins), and the winners are copied out once, in
video-id order. Only rows no merge holds (finished after a killed run's
last part) are read one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..storage import S3Settings, StorageError, join, list_objects, open_input
from .manifest import MANIFEST_SCHEMA, PARTS, ManifestRow, manifest_table

_ORDER = "_order"  # a row's place among every merge read: a later one wins


@dataclass(frozen=True)
class Merge:
    """Rows read together. `listed`: a row counts only with the status its durable row's
    listing shows (an earlier run's merge); otherwise every row counts. `ours`: this run
    committed them (the manifest's `processed`)."""

    table: pa.Table
    listed: bool = True
    ours: bool = False


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


def compact(
    output: str,
    wanted: dict[str, tuple[str, str]],
    settings: S3Settings | None = None,
    read_one: Callable[[str], ManifestRow | None] | None = None,
    threads: int = 16,
    ours: Sequence[str] = (),
    pending: Sequence[ManifestRow] = (),
) -> tuple[pa.Table, list[str]]:
    """The manifest, by video id, and the part files it was merged from.

    Earlier runs' rows: those of `wanted` ({video id: (status, row URI)} from
    the listing of the durable rows), each the latest merged row whose
    status is the listed one ("unknown": any), from the last manifest and
    the part files (a GET each); a row no merge holds so is read with
    `read_one`, `threads` at a time (None: left out). This run's rows: every
    row of its own part files (`ours`, URIs) and of `pending` (rows no part
    holds yet), `processed` = true.
    """
    parts = part_uris(output, settings)
    mine = set(ours)
    merges = []
    for uri in [join(output, "manifest.parquet"), *parts]:
        table = read_merge(uri, settings)
        if table is not None:
            merges.append(Merge(table, listed=uri not in mine, ours=uri in mine))
    if pending:
        merges.append(Merge(manifest_table(list(pending)), listed=False, ours=True))
    winners = _winners(merges, wanted)
    if read_one is not None:
        have = set(winners["video_id"].to_pylist())
        missing = [(v, uri) for v, (_, uri) in wanted.items() if v not in have]
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            read = [r for r in pool.map(lambda m: read_one(m[1]), missing) if r is not None]
        if read:
            merges.append(Merge(manifest_table(read), listed=False))
            winners = _winners(merges, wanted)
    return _rows(merges, winners), parts


def _winners(merges: list[Merge], wanted: dict[str, tuple[str, str]]) -> pa.Table:
    """(video_id, _order) of each video's winning row, in video-id order: only the two
    columns are looked at, so the rows themselves are copied once, by `_rows`."""
    ids = pa.array(list(wanted), pa.string())
    listed = pa.array([status for status, _ in wanted.values()], pa.string())
    keys, offset = [], 0
    for merge in merges:
        table = merge.table
        order = pa.array(range(offset, offset + table.num_rows), pa.int64())
        offset += table.num_rows
        counted = pa.table({"video_id": table["video_id"], _ORDER: order})
        if merge.listed:
            where = pc.index_in(table["video_id"], value_set=ids)  # null: not wanted
            status = pc.take(listed, where)
            keep = pc.and_(
                pc.is_valid(where),
                pc.or_(pc.equal(status, table["status"]), pc.equal(status, "unknown")),
            )
            counted = counted.filter(pc.fill_null(keep, False))
        keys.append(counted)
    if not keys:
        return pa.table({"video_id": pa.array([], pa.string()), _ORDER: pa.array([], pa.int64())})
    latest = pa.concat_tables(keys).group_by("video_id").aggregate([(_ORDER, "max")])
    winners = pa.table({"video_id": latest["video_id"], _ORDER: latest[f"{_ORDER}_max"]})
    return winners.sort_by("video_id")


def _rows(merges: list[Merge], winners: pa.Table) -> pa.Table:
    if not merges:
        return MANIFEST_SCHEMA.empty_table()
    processed = MANIFEST_SCHEMA.get_field_index("processed")
    tables = [
        m.table.set_column(
            processed, "processed", pa.array([m.ours] * m.table.num_rows, pa.bool_())
        )
        for m in merges
    ]
    return pa.concat_tables(tables).take(winners[_ORDER])
