"""Staging and committing one video's outputs, clean on S3 where a move is copy + delete.

Files are uploaded under `<output>/_tmp/<video>-<attempt>/` as they finish
(and deleted locally, so local disk holds at most a chunk). The commit then
clears `<output>/<video>/` (an attempt that died mid-commit, or an earlier
run, may have left files there), moves every staged file in, writes
`_SUCCESS.json` and last the durable manifest row, which is what a rerun
trusts. A folder therefore never mixes files of two attempts, and nothing
looks done before it is.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from ..storage import S3Settings, commit_object, join, open_output, write_bytes
from ..storage.objects import delete
from .lease import check_holder
from .manifest import ManifestRow
from .rows import write_row

SUCCESS = "_SUCCESS.json"


def staging_key(video_id: str) -> str:
    return video_id.replace("/", "__")


class OutputCommit:
    """One attempt at one video's outputs: a local folder, a staging prefix, the commit."""

    def __init__(
        self, output: str, video_id: str, settings: S3Settings | None = None, lease_owner: str = ""
    ) -> None:
        self.output = output
        self.lease_owner = lease_owner  # the job's: checked right before the commit (fencing)
        self.video_id = video_id
        self.settings = settings
        self.final = join(output, video_id)
        self.staging = join(output, "_tmp", f"{staging_key(video_id)}-{uuid.uuid4().hex[:8]}")
        self.local = Path(tempfile.mkdtemp(prefix="vda-infer-"))
        self.uploaded: list[str] = []
        self._lock = threading.Lock()

    def upload(self, path: Path) -> None:
        """`DepthOutputs`' on_file_done: stream the file to staging, then drop it locally."""
        relative = str(path.relative_to(self.local))
        # streamed (multipart on S3): a depth chunk can be hundreds of MB
        with (
            path.open("rb") as source,
            open_output(join(self.staging, relative), self.settings) as target,
        ):
            shutil.copyfileobj(source, target, length=8 << 20)
        path.unlink()
        with self._lock:
            self.uploaded.append(relative)

    def commit(self, row: ManifestRow, step: Callable[[str], None] = lambda phase: None) -> None:
        """LeaseLost: the job no longer holds the output prefix, and nothing was touched.
        `step` is called per file moved (the stall deadline sees a long commit move)."""
        check_holder(self.output, self.lease_owner, self.settings)
        delete(self.final, self.settings)  # leftovers of an aborted or earlier attempt
        for relative in self.uploaded:
            commit_object(join(self.staging, relative), join(self.final, relative), self.settings)
            step("commit")
        row.files = list(self.uploaded)
        summary = json.dumps(row.to_dict(), indent=2).encode()
        write_bytes(join(self.final, SUCCESS), summary, self.settings)
        write_row(self.output, row, self.settings)

    def cleanup(self) -> None:
        shutil.rmtree(self.local, ignore_errors=True)
        with contextlib.suppress(Exception):  # best effort: the next run clears _tmp/ too
            delete(self.staging, self.settings)


def record_failure(
    output: str, row: ManifestRow, settings: S3Settings | None = None, lease_owner: str = ""
) -> None:
    """A failed video's durable row (a rerun skips it unless retry_failed); best effort, and
    never by a job that lost its lease, nor over a done row (`write_row` refuses that)."""
    with contextlib.suppress(Exception):
        check_holder(output, lease_owner, settings)
        write_row(output, row, settings)
