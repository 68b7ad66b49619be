"""`vda infer` never waits without a deadline, and charges an attempt only to the unit that ran.

Real stuck inputs: a named pipe among local videos that never delivers a
byte, and on the loopback S3 server a TCP proxy that stops forwarding in
the middle of one object. Both jobs end by themselves, the good videos
done and the stuck one failed with the reason.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
import uuid

import boto3
import pyarrow.parquet as pq
import pytest
from helpers import short_clip_archive

from vda.jobs.cli import main
from vda.platform.storage import read_bytes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STALL_S = 6
ATTEMPTS = 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return short_clip_archive(tmp_path_factory.mktemp("deadlines"), 3, model_seed=5)


def _args(input_, output, checkpoint, tmp_path, *extra):
    return [
        "infer",
        "--input",
        str(input_),
        "--output",
        str(output),
        "--checkpoint",
        str(checkpoint),
        "input_size=28",
        "outputs.preview=false",
        "actors.cpus_per_actor=1",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        *extra,
    ]


def _manifest(uri: str) -> dict[str, dict]:
    table = pq.read_table(io.BytesIO(read_bytes(uri)))
    return {row["video_id"]: row for row in table.to_pylist()}


def test_a_named_pipe_that_never_delivers_fails_alone_within_its_deadline(
    clips, ray_cluster, tmp_path, capsys
):
    inputs = tmp_path / "videos"
    inputs.mkdir()
    for clip in (clips / "videos").iterdir():
        os.symlink(clip, inputs / clip.name)
    os.mkfifo(inputs / "stuck.mp4")  # opening it blocks until a writer comes: none will
    start = time.monotonic()
    code = main(
        _args(
            inputs,
            tmp_path / "out",
            clips / "tiny.ckpt",
            tmp_path,
            f"actors.stall_timeout_s={STALL_S}",
            f"actors.max_attempts={ATTEMPTS}",
        )
    )
    elapsed = time.monotonic() - start
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    rows = _manifest(str(tmp_path / "out" / "manifest.parquet"))
    assert {k: r["status"] for k, r in rows.items()} == {
        "clip0": "done",
        "clip1": "done",
        "clip2": "done",
        "stuck": "failed",
    }
    stuck = rows["stuck"]
    assert stuck["attempts"] == ATTEMPTS
    assert f"attempt {ATTEMPTS} of {ATTEMPTS}" in stuck["error"]
    assert "stalled for" in stuck["error"] and "in open" in stuck["error"], stuck["error"]
    assert all(rows[f"clip{i}"]["attempts"] == 1 for i in range(3))
    # each attempt ends one deadline (plus a poll) after it began; start-up is the rest
    assert elapsed < ATTEMPTS * (STALL_S + 5) + 60, elapsed


def test_actors_that_die_idle_charge_no_attempt(clips, ray_cluster, tmp_path, capsys):
    """Every actor dies between units (before taking its second): the units sent to dead
    actors go elsewhere uncharged; every video done at attempt 1, no failed row. Two
    attempts are allowed so that the bound on uncharged re-sends (twice max_attempts,
    against a unit bouncing for ever) is not what this test measures: a unit can meet
    several actors that have each done their one unit."""
    code = main(
        _args(
            clips / "videos",
            tmp_path / "idle",
            clips / "tiny.ckpt",
            tmp_path,
            "fault.die_idle_every=1",
            "actors.overlap=always",  # its second unit runs beside the first: dies idle all the same
            "actors.max_attempts=2",
            "actors.check_s=1",
        )
    )
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    rows = _manifest(str(tmp_path / "idle" / "manifest.parquet"))
    errors = {video: r["error"] for video, r in rows.items() if r["status"] != "done"}
    assert [r["status"] for r in rows.values()] == ["done"] * 3, (errors, printed[-3000:])
    assert [r["attempts"] for r in rows.values()] == [1] * 3, printed[-3000:]
    assert "died before taking it" in printed and "no attempt charged" in printed


class StallingProxy:
    """A TCP proxy in front of the S3 server that, on a connection whose request names
    `key`, forwards the first bytes of the answer and then nothing, keeping it open."""

    def __init__(self, upstream: int, key: str, forward_bytes: int = 2000) -> None:
        self.upstream, self.key, self.forward_bytes = upstream, key.encode(), forward_bytes
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stalled = threading.Event()
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.5)
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, upstream]
            poisoned = threading.Event()
            threading.Thread(
                target=self._up, args=(client, upstream, poisoned), daemon=True
            ).start()
            threading.Thread(
                target=self._down, args=(upstream, client, poisoned), daemon=True
            ).start()

    def _up(self, source, target, poisoned) -> None:
        while data := _recv(source):
            if self.key in data:
                poisoned.set()
            target.sendall(data)

    def _down(self, source, target, poisoned) -> None:
        sent = 0
        while data := _recv(source):
            if poisoned.is_set():
                room = max(0, self.forward_bytes - sent)
                if room:
                    target.sendall(data[:room])
                    sent += min(room, len(data))
                self.stalled.set()
                continue  # swallow the rest: the reader waits for bytes that never come
            target.sendall(data)

    def close(self) -> None:
        self.stop.set()
        for sock in [self.server, *self.sockets]:
            sock.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def test_an_s3_read_that_stops_mid_object_fails_alone_within_its_deadline(
    clips, ray_cluster, s3_endpoint, tmp_path, capsys
):
    bucket = f"stall-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    for clip in sorted((clips / "videos").iterdir()):
        s3.upload_file(str(clip), bucket, f"videos/{clip.name}")
    s3.upload_file(str(clips / "videos" / "clip0.mp4"), bucket, "videos/stuck.mp4")
    proxy = StallingProxy(int(s3_endpoint.rsplit(":", 1)[1]), "videos/stuck.mp4")
    try:
        code = main(
            _args(
                f"s3://{bucket}/videos",
                f"s3://{bucket}/out",
                clips / "tiny.ckpt",
                tmp_path,
                f"s3.endpoint_url=http://127.0.0.1:{proxy.port}",
                f"actors.stall_timeout_s={STALL_S}",
                f"actors.max_attempts={ATTEMPTS}",
            )
        )
    finally:
        proxy.close()
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert proxy.stalled.is_set()  # the stuck object's body really stopped mid-way
    rows = _manifest(f"s3://{bucket}/out/manifest.parquet")
    assert {k: r["status"] for k, r in rows.items()} == {
        "clip0": "done",
        "clip1": "done",
        "clip2": "done",
        "stuck": "failed",
    }
    assert "stalled for" in rows["stuck"]["error"] and rows["stuck"]["attempts"] == ATTEMPTS
