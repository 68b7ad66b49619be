"""Each finished video's durable row, keyed so that a listing alone tells what is done.

Whoever finishes a video (its actor, or the stitch of a split video) writes
its row, so a job killed at any moment leaves a record of everything
finished. The status is in the key:

- `<output>/_manifests/done/<video_id>.json`: committed. Written create-only
  (S3 `If-None-Match: *`, locally `O_EXCL`): no video is committed twice,
  even by a job that lost its lease.
- `<output>/_manifests/failed/<video_id>.json`: failed, with the reason;
  replaced (`If-Match`) by a later failure, and removed once a retry commits.
- `<output>/_manifests/rows/<video_id>.json`: the layout of earlier
  versions, status inside; still read.

So planning a rerun is one listing of `_manifests/` (1,000 keys a request
on S3), whatever happened to the last run: no read per row. The rows'
contents are needed only for the manifest (`manifest.py`), which merges
them in part files as they arrive.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from ..storage import S3Settings, StorageError, is_missing, join, list_objects, read_bytes, resolve
from ..storage import conditional as cond
from .manifest import ManifestRow

MANIFESTS = "_manifests"
FOLDERS = {"done": "done", "failed": "failed"}
LEGACY = "rows"  # status inside the file


class AlreadyCommitted(StorageError):
    """The video has a done row already: no video is committed twice."""


def row_uri(output: str, video_id: str, status: str) -> str:
    return join(output, MANIFESTS, FOLDERS.get(status, "failed"), f"{video_id}.json")


def write_row(output: str, row: ManifestRow, settings: S3Settings | None = None) -> None:
    """The durable row. A done row is created once (AlreadyCommitted if it exists) and then
    the video's failed row, if any, is removed; a failed row is refused over a done one."""
    data = json.dumps(row.to_dict()).encode()
    done = row_uri(output, row.video_id, "done")
    if row.status == "done":
        try:
            cond.create(done, data, settings)
        except cond.PreconditionFailed:
            raise AlreadyCommitted(f"{row.video_id} is committed already: its row stands") from None
        failed = cond.read(row_uri(output, row.video_id, "failed"), settings)
        if failed is not None:
            with contextlib.suppress(StorageError):  # a leftover is harmless: done wins
                cond.remove(row_uri(output, row.video_id, "failed"), failed.etag, settings)
        return
    if cond.read(done, settings) is not None:
        raise AlreadyCommitted(f"{row.video_id} is committed already: a failure does not hide it")
    uri = row_uri(output, row.video_id, "failed")
    for _ in range(3):  # each round loses only to another writer's change
        existing = cond.read(uri, settings)
        try:
            if existing is None:
                cond.create(uri, data, settings)
            else:
                cond.replace(uri, data, existing.etag, settings)
            return
        except cond.PreconditionFailed:
            continue
    raise StorageError(f"{uri}: it kept changing under this writer")


def read_row(output: str, video_id: str, settings: S3Settings | None = None) -> ManifestRow | None:
    """A video's durable row (done before failed, then the earlier layout), or None."""
    for uri in (
        row_uri(output, video_id, "done"),
        row_uri(output, video_id, "failed"),
        join(output, MANIFESTS, LEGACY, f"{video_id}.json"),
    ):
        row = _read(uri, settings)
        if row is not None:
            return row
    return None


def read_row_at(uri: str, settings: S3Settings | None = None) -> ManifestRow | None:
    return _read(uri, settings)


def _read(uri: str, settings: S3Settings | None) -> ManifestRow | None:
    try:
        data = read_bytes(uri, settings)
    except StorageError as error:
        if is_missing(error):
            return None
        raise
    try:
        return ManifestRow.from_dict(json.loads(data))
    except (ValueError, TypeError):
        return None  # a foreign file: the video is redone


def listed_statuses(
    output: str, settings: S3Settings | None = None
) -> Iterator[tuple[str, str, str]]:
    """(video id, status, row URI) for every row under `_manifests/`, from the listing
    alone; status "unknown" for a row of the earlier layout (its file says)."""
    base = resolve(join(output, MANIFESTS), settings)[1].rstrip("/") + "/"
    for item in list_objects(join(output, MANIFESTS), (".json",), settings):
        path = item.uri.split("://", 1)[-1]
        if not path.startswith(base):
            continue
        folder, _, rest = path[len(base) :].partition("/")
        if not rest:
            continue
        video_id = rest.removesuffix(".json")
        if folder in FOLDERS:
            yield video_id, folder, item.uri
        elif folder == LEGACY:
            yield video_id, "unknown", item.uri
