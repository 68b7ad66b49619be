"""The end of a run: `manifest.parquet` compacted from the merges, streamed, never held whole.

A million-video job must not end by holding a million rows: the rows this
run committed are in its part files already (`manifest.ManifestParts`), the
earlier runs' in the last manifest and their parts. Two passes over those
merges:

1. the key columns alone (the video id, its status, frames and the quality
   signals) pick each video's row (a later merge wins; an earlier run's row
   counts only with the status its durable row's listing shows), and from
   them come the counts and the outliers (`quality.outlier_scores`);
2. each merge is read again, whole, one at a time, and its winning rows are
   written on as a row group of the new manifest.

So the driver holds the key columns of every row and one merge at a time,
not the manifest. The manifest's rows follow the merges' order (earlier
runs' first), not the video ids'. Only rows no merge holds (finished after
a killed run's last part) are read one by one.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..storage import (
    S3Settings,
    StorageError,
    commit_object,
    join,
    list_objects,
    open_input,
    open_output,
)
from .manifest import MANIFEST_SCHEMA, PARTS, ManifestRow, manifest_table
from .quality import MIN_GAP, outlier_scores

KEYS = ["video_id", "status", "frames", "frames_per_second", "nonfinite_share", "zero_share"]
KEYS += list(MIN_GAP)  # what picking, counting and flagging need of every row
_ORDER, _OURS = "_order", "_ours"  # a row's place among every merge read; this run's


def conform(table: pa.Table, names: Sequence[str] | None = None) -> pa.Table:
    """A table in today's schema (or those of its columns): a manifest written before a
    column existed gets the column's default, a column no longer written is dropped."""
    defaults = ManifestRow("", "").to_dict()
    fields = [MANIFEST_SCHEMA.field(n) for n in names] if names else list(MANIFEST_SCHEMA)
    columns = []
    for f in fields:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.array([defaults[f.name]] * table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def read_merge(
    uri: str, settings: S3Settings | None = None, columns: Sequence[str] | None = None
) -> pa.Table | None:
    """One merge (a manifest or a part file), or some of its columns; None when it is
    missing, torn or foreign (its rows are then read on their own)."""
    try:
        with open_input(uri, settings) as handle:
            schema = pq.read_schema(handle)
            handle.seek(0)
            present = [c for c in columns if c in schema.names] if columns else None
            return conform(pq.read_table(handle, columns=present), columns)
    except StorageError:
        return None
    except Exception:
        return None


def part_uris(output: str, settings: S3Settings | None = None) -> list[str]:
    """The part files under the output, oldest first (their names start with their time)."""
    return sorted(o.uri for o in list_objects(join(output, PARTS), (".parquet",), settings))


@dataclass
class Merge:
    """Rows merged together: a file in storage (read again by each pass) or rows held here
    (this run's that no part took, rows read one by one). `listed`: a row counts only with
    the status the listing of its durable row shows (an earlier run's); `ours`: this run
    committed them (the manifest's `processed`)."""

    uri: str | None = None
    table: pa.Table | None = None
    listed: bool = True
    ours: bool = False
    rows: int = 0  # as the first pass read it: the second skips a merge that changed

    def read(self, settings: S3Settings | None, columns: Sequence[str] | None = None):
        if self.table is not None:
            return self.table.select(columns) if columns else self.table
        return read_merge(self.uri, settings, columns)


@dataclass
class Compacted:
    """What the end of a run wrote, and what it found on the way."""

    manifest: str
    parts: list[str]  # the part files merged into it (the caller deletes them)
    counts: dict[str, int] = field(default_factory=dict)  # done, failed, skipped, frames
    outliers: list[ManifestRow] = field(default_factory=list)  # worst first


def merges_of(
    output: str,
    settings: S3Settings | None = None,
    ours: Sequence[str] = (),
    pending: Sequence[ManifestRow] = (),
) -> tuple[list[Merge], list[str]]:
    """The last manifest, the part files (this run's: `ours`) and `pending` (this run's rows
    no part holds yet), oldest first; and the part files' URIs."""
    parts = part_uris(output, settings)
    mine = set(ours)
    merges = [Merge(join(output, "manifest.parquet"))]
    merges += [Merge(uri, listed=uri not in mine, ours=uri in mine) for uri in parts]
    if pending:
        merges.append(Merge(table=manifest_table(list(pending)), listed=False, ours=True))
    return merges, parts


def winners(
    merges: list[Merge],
    wanted: dict[str, tuple[str, str]],
    settings: S3Settings | None = None,
    read_one: Callable[[str], ManifestRow | None] | None = None,
    threads: int = 16,
) -> pa.Table:
    """The key columns of each video's row (+ `_order`, `_ours`): of `wanted` ({video id:
    (status, row URI)} from the listing of the durable rows), the latest merged row whose
    status is the listed one ("unknown": any), and every row of merges not `listed`. A
    wanted row no merge holds is read with `read_one` (None: left out), added as a merge."""
    picked = _pick(merges, wanted, settings)
    if read_one is not None:
        have = set(picked["video_id"].to_pylist())
        missing = [(v, uri) for v, (_, uri) in wanted.items() if v not in have]
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            read = [r for r in pool.map(lambda m: read_one(m[1]), missing) if r is not None]
        if read:
            merges.append(Merge(table=manifest_table(read), listed=False))
            picked = _pick(merges, wanted, settings)
    return picked


def _pick(merges: list[Merge], wanted: dict[str, tuple[str, str]], settings) -> pa.Table:
    ids = pa.array(list(wanted), pa.string())
    listed = pa.array([status for status, _ in wanted.values()], pa.string())
    keys, offset = [], 0
    for merge in merges:
        table = merge.read(settings, KEYS)
        merge.rows = 0 if table is None else table.num_rows
        if table is None:
            continue
        table = table.append_column(
            _ORDER, pa.array(np.arange(offset, offset + merge.rows, dtype=np.int64))
        ).append_column(_OURS, pa.array(np.full(merge.rows, merge.ours)))
        offset += merge.rows
        if merge.listed:
            where = pc.index_in(table["video_id"], value_set=ids)  # null: not wanted
            status = pc.take(listed, where)
            keep = pc.and_(
                pc.is_valid(where),
                pc.or_(pc.equal(status, table["status"]), pc.equal(status, "unknown")),
            )
            table = table.filter(pc.fill_null(keep, False))
        keys.append(table)
    if not keys:
        return _empty_keys()
    every = pa.concat_tables(keys)
    latest = every.select(["video_id", _ORDER]).group_by("video_id").aggregate([(_ORDER, "max")])
    chosen = every.filter(pc.is_in(every[_ORDER], value_set=latest[f"{_ORDER}_max"]))
    return chosen.sort_by(_ORDER)


def _empty_keys() -> pa.Table:
    schema = pa.schema([MANIFEST_SCHEMA.field(k) for k in KEYS])
    return (
        schema.empty_table()
        .append_column(_ORDER, pa.array([], pa.int64()))
        .append_column(_OURS, pa.array([], pa.bool_()))
    )


def counts(picked: pa.Table) -> dict[str, int]:
    """done and frames: this run's; skipped: done before; failed: either."""
    done = pc.equal(picked["status"], "done")
    ours = picked[_OURS]
    mine = pc.and_(done, ours)
    return {
        "done": int(pc.sum(mine).as_py() or 0),
        "skipped": int(pc.sum(pc.and_(done, pc.invert(ours))).as_py() or 0),
        "failed": int(pc.sum(pc.equal(picked["status"], "failed")).as_py() or 0),
        "frames": int(pc.sum(picked["frames"].filter(mine)).as_py() or 0),
    }


def compact(
    output: str,
    wanted: dict[str, tuple[str, str]],
    settings: S3Settings | None = None,
    read_one: Callable[[str], ManifestRow | None] | None = None,
    threads: int = 16,
    ours: Sequence[str] = (),
    pending: Sequence[ManifestRow] = (),
) -> Compacted:
    """Write `manifest.parquet` (and this run's copy under `_manifests/`): the earlier runs'
    rows of `wanted` and every row of this run's part files (`ours`) and of `pending`."""
    merges, parts = merges_of(output, settings, ours, pending)
    picked = winners(merges, wanted, settings, read_one, threads)
    scores = outlier_scores(picked)  # by index in `picked`, which is in merge order
    orders = picked[_ORDER].to_numpy()
    flagged = {int(orders[i]): (score, "; ".join(why)) for i, (score, why) in scores.items()}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    manifest = join(output, "manifest.parquet")  # a merge read again below: replaced last
    staged = join(output, "_tmp", f"manifest-{uuid.uuid4().hex[:8]}.parquet")
    uris = [join(output, "_manifests", f"manifest-{stamp}.parquet"), staged]
    outliers: list[tuple[float, ManifestRow]] = []
    with contextlib.ExitStack() as stack:  # a writer with no rows writes the schema alone
        writers = [
            stack.enter_context(
                pq.ParquetWriter(stack.enter_context(open_output(u, settings)), MANIFEST_SCHEMA)
            )
            for u in uris
        ]
        for table, rows_orders in _winning_rows(merges, orders, flagged, settings):
            for writer in writers:
                writer.write_table(table)
            marked = table["outlier"].to_numpy(zero_copy_only=False)
            for order, row in zip(
                rows_orders[marked].tolist(), table.filter(table["outlier"]).to_pylist()
            ):
                outliers.append((flagged[order][0], ManifestRow.from_dict(row)))
    commit_object(staged, manifest, settings)  # whole or not at all, locally too
    ranked = [row for _, row in sorted(outliers, key=lambda pair: -pair[0])]
    return Compacted(manifest, parts, counts(picked), ranked)


def _winning_rows(merges: list[Merge], orders: np.ndarray, flagged: dict, settings):
    """Each merge's winning rows, read again whole, with `processed` and the outlier flags
    set, and their places among every merge's rows."""
    offset = 0
    for merge in merges:
        first, offset = offset, offset + merge.rows
        lo, hi = np.searchsorted(orders, [first, offset])
        if lo == hi:
            continue
        table = merge.read(settings)
        if table is None or table.num_rows != merge.rows:  # changed since: its durable rows
            continue  # are merged by the next run
        mine = orders[lo:hi]
        rows = table.take(pa.array(mine - first))
        reasons = [flagged[o][1] if o in flagged else "" for o in mine.tolist()]
        for name, column in (
            ("processed", pa.array(np.full(len(mine), merge.ours))),
            ("outlier", pa.array([o in flagged for o in mine.tolist()], pa.bool_())),
            ("outlier_reasons", pa.array(reasons, pa.string())),
        ):
            rows = rows.set_column(MANIFEST_SCHEMA.get_field_index(name), name, column)
        yield rows, mine
