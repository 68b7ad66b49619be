"""One job per output prefix, enforced by the store's conditional writes (loopback S3 and local)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from helpers import tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.platform.infer.lease import LEASE, LeaseHeld, LeaseLost, OutputLease, check_holder
from vda.platform.infer.manifest import ManifestRow
from vda.platform.infer.rows import AlreadyCommitted, read_row, write_row
from vda.platform.storage import conditional as cond
from vda.platform.storage import join

pytestmark = pytest.mark.integration


@pytest.fixture(params=["s3", "local"])
def prefix(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return f"s3://{request.getfixturevalue('bucket')}/out"


def test_conditional_writes_refuse_what_they_should(prefix):
    uri = join(prefix, "x.json")
    first = cond.create(uri, b"one")
    with pytest.raises(cond.PreconditionFailed):
        cond.create(uri, b"two")
    assert cond.read(uri).data == b"one" and cond.read(uri).etag == first
    second = cond.replace(uri, b"two", first)
    with pytest.raises(cond.PreconditionFailed):
        cond.replace(uri, b"three", first)  # stale: someone wrote since
    with pytest.raises(cond.PreconditionFailed):
        cond.remove(uri, first)
    assert cond.read(uri).data == b"two"
    cond.remove(uri, second)
    assert cond.read(uri) is None


def test_two_jobs_starting_at_the_same_instant_one_wins_ten_times_out_of_ten(prefix):
    for round_ in range(10):
        output = join(prefix, f"round{round_}")
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        leases = [OutputLease(output, 30) for _ in range(2)]

        def start(lease, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                lease.acquire()
                outcomes.append("runs")
            except LeaseHeld as error:
                outcomes.append(str(error))

        threads = [threading.Thread(target=start, args=(lease,)) for lease in leases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 2 and outcomes.count("runs") == 1, outcomes
        refusal = next(o for o in outcomes if o != "runs")
        assert "is in use by another vda infer" in refusal and "\n" not in refusal
        for lease in leases:
            lease.release()
        assert cond.read(join(output, LEASE)) is None  # the winner released it


def test_a_lease_whose_holder_stops_renewing_is_taken_after_it_expires(prefix):
    holder = OutputLease(prefix, 2.0)
    holder.acquire()
    holder._stop.set()  # the holder freezes: no more renewals
    with pytest.raises(LeaseHeld):
        OutputLease(prefix, 2.0).acquire()
    time.sleep(2.2)
    taker = OutputLease(prefix, 30)
    taker.acquire()
    check_holder(prefix, taker.owner)
    with pytest.raises(LeaseLost):
        check_holder(prefix, holder.owner)  # the holder's actors would commit nothing now
    holder.release()  # must not delete the taker's lease
    assert json.loads(cond.read(join(prefix, LEASE)).data)["owner"] == taker.owner
    taker.release()


def test_a_holder_whose_renewal_is_refused_is_fenced_at_once(prefix):
    lost: list[str] = []
    holder = OutputLease(prefix, 1.5, on_lost=lost.append)
    holder.acquire()
    uri = join(prefix, LEASE)
    intruder = {"owner": "someone-else", "host": "elsewhere", "pid": 1, "expires": time.time() + 60}
    cond.replace(uri, json.dumps(intruder).encode(), cond.read(uri).etag)
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lost and "was taken by another job" in lost[0]
    with pytest.raises(LeaseLost):
        holder.check()
    holder.release()
    assert json.loads(cond.read(uri).data)["owner"] == "someone-else"  # not deleted


def test_a_done_row_is_written_once_and_a_failed_row_gives_way(prefix):
    failed = ManifestRow(video="v.mp4", video_id="v", status="failed", error="boom")
    write_row(prefix, failed)
    done = ManifestRow(video="v.mp4", video_id="v", status="done", frames=5)
    write_row(prefix, done)  # a retry of a failed video replaces its row
    with pytest.raises(AlreadyCommitted):
        write_row(prefix, ManifestRow(video="v.mp4", video_id="v", status="done", frames=9))
    with pytest.raises(AlreadyCommitted):
        write_row(prefix, failed)  # nor does a late failure hide a commit
    assert read_row(prefix, "v").frames == 5


@pytest.mark.slow
def test_a_job_whose_lease_is_taken_stops_committing_and_ends_in_one_line(
    ray_cluster, tmp_path, capsys
):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(8):
        write_mp4v(videos / f"clip{i}.mp4", moving_frames(6, 28, 42, seed=i), fps=10)
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    output = tmp_path / "out"
    rows = output / "_manifests" / "done"
    taken: dict[str, object] = {}

    def take_over():  # another job takes the lease once the first video is committed
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (rows.exists() and any(rows.iterdir())):
            time.sleep(0.1)
        uri = str(output / LEASE)
        body = {"owner": "taker", "host": "elsewhere", "pid": 1, "expires": time.time() + 600}
        cond.replace(uri, json.dumps(body).encode(), cond.read(uri).etag)
        taken["rows"] = {p.name for p in rows.iterdir() if not p.name.startswith(".")}

    thread = threading.Thread(target=take_over, daemon=True)
    thread.start()
    code = main(
        [
            "infer",
            "--input",
            str(videos),
            "--output",
            str(output),
            "--checkpoint",
            str(tmp_path / "tiny.ckpt"),
            "input_size=28",
            "outputs.preview=false",
            "fault.frame_delay_s=0.3",
            "lease_s=3",
            "actors.num_actors=1",
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        ]
    )
    thread.join(timeout=5)
    captured = capsys.readouterr()
    assert code == 2, captured.out[-2000:]
    stopped = [line for line in captured.err.splitlines() if line.startswith("vda infer: stopped")]
    assert len(stopped) == 1 and "lease" in stopped[0], captured.err[-2000:]
    # after the take-over this job committed nothing more (at most the one in flight)
    after = {p.name for p in rows.iterdir() if not p.name.startswith(".")}
    assert len(after - taken["rows"]) <= 1 and len(after) < 8
    assert not (output / "manifest.parquet").exists()  # a fenced job writes no manifest


def test_a_holder_that_cannot_renew_fences_itself_before_its_lease_expires(tmp_path, monkeypatch):
    """The S3 server goes away under a holder (a real server process, stopped): its renewals
    fail, and it stops itself before the lease it last wrote expires."""
    import subprocess
    import sys
    import uuid

    import boto3
    from clusters import wait_for_port
    from helpers import free_port

    from vda.platform.storage import S3Settings

    for key, value in {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        endpoint = f"http://127.0.0.1:{port}"
        bucket = f"fence-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        settings = S3Settings(
            endpoint_url=endpoint,
            region="us-east-1",
            connect_timeout_s=0.5,
            request_timeout_s=1,
            max_attempts=1,
        )
        lost: list[tuple[str, float]] = []
        holder = OutputLease(
            f"s3://{bucket}/out", 3.0, settings, on_lost=lambda r: lost.append((r, time.time()))
        )
        holder.acquire()
    finally:
        server.terminate()
        server.wait(timeout=10)
    written = holder.expires  # the expiry of the last lease that reached the store
    deadline = time.monotonic() + 10
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lost and "could not renew the lease" in lost[0][0], lost
    assert lost[0][1] < written  # fenced before anyone could take it over
    assert holder.expires == written  # failed writes did not pretend to extend it
    holder.release()
