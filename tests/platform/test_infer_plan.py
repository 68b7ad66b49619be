"""Planning `vda infer` over an archive: listings, not a request per video; `--plan`."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
import pytest
from clusters import wait_for_port
from helpers import free_port, tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.platform.core.config import build
from vda.platform.infer.config import InferConfig
from vda.platform.infer.manifest import ManifestRow, write_manifest, write_row
from vda.platform.infer.plan import plan_job
from vda.platform.storage import S3Settings

pytestmark = pytest.mark.integration

REQUEST = re.compile(r'"\S*(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP')


@pytest.fixture
def logged_s3(tmp_path):
    """A moto server of its own whose request log (werkzeug's, one line a request) we read."""
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", tmp_path / "moto.log"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _requests(log, since: int) -> list[tuple[str, str]]:
    time.sleep(0.3)  # the server writes its log line after the response
    lines = log.read_text().splitlines()[since:]
    return [m.groups() for line in lines if (m := REQUEST.search(line))]


@pytest.mark.slow
def test_planning_1100_videos_with_1007_done_lists_instead_of_reading_each_row(
    logged_s3, tmp_path, monkeypatch
):
    endpoint, log = logged_s3
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = S3Settings(endpoint_url=endpoint, region="us-east-1")
    bucket = f"plan-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=botocore.config.Config(max_pool_connections=16),
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    # just over one listing page (1,000 keys) of inputs and of rows: every listing pages
    ids = [f"shelf{i % 7}/clip{i:04d}" for i in range(1100)]
    with ThreadPoolExecutor(16) as pool:  # listing is all planning reads of an input
        list(pool.map(lambda v: s3.put_object(Bucket=bucket, Key=f"videos/{v}.mp4", Body=b""), ids))
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    s3.upload_file(str(tmp_path / "tiny.ckpt"), bucket, "models/tiny.ckpt")
    output = f"s3://{bucket}/depth"

    def row(i: int, status: str) -> ManifestRow:
        return ManifestRow(f"s3://{bucket}/videos/{ids[i]}.mp4", ids[i], status=status, frames=i)

    merged = [row(i, "done") for i in range(1004)] + [row(1004, "failed")]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: write_row(output, r, settings), merged))
    time.sleep(1.1)  # S3 times are whole seconds: the merge is strictly newer than its rows
    write_manifest(output, merged, settings)
    time.sleep(1.1)
    newer = [row(1004, "done"), row(1005, "done"), row(1006, "failed")]  # a killed run's rows
    for r in newer:
        write_row(output, r, settings)

    config = build(
        InferConfig,
        {"input": f"s3://{bucket}/videos", "output": output,
         "checkpoint": f"s3://{bucket}/models/tiny.ckpt",
         "s3": {"endpoint_url": endpoint, "region": "us-east-1"}},
    )  # fmt: skip
    since = len(log.read_text().splitlines())
    plan = plan_job(config)
    requests = _requests(log, since)

    assert len(plan.videos) == 1100 and len(plan.todo) == 93
    assert {v["video_id"] for v in plan.todo} == set(ids[1007:])
    assert plan.earlier[ids[1004]].status == "done"  # the newer row wins over the merge
    assert plan.earlier[ids[1006]].status == "failed" and plan.failed_before == 1
    assert plan.earlier[ids[5]].frames == 5  # taken from the merge, not read again
    listings = [path for method, path in requests if method == "GET" and "list-type=2" in path]
    assert len(listings) == 2 * math.ceil(1100 / 1000)  # inputs: 2 pages; rows: 2 pages
    row_reads = [p for m, p in requests if m == "GET" and p.startswith(f"/{bucket}/depth/_manif")]
    assert len(row_reads) == len(newer)  # only what was written after the merge
    # the rest is constant: the write probe, the checkpoint, the merge (a HEAD and its GETs)
    assert len(requests) <= 2 * math.ceil(1100 / 1000) + len(newer) + 20, requests


@pytest.mark.slow
def test_plan_prints_the_work_ahead_without_starting_anything(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i, count in enumerate((12, 30)):
        write_mp4v(videos / f"v{i}.mp4", moving_frames(count, 28, 42, seed=i), fps=10)
    (videos / "broken.mp4").write_bytes(b"not a video")
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    argv = ["infer", "--input", str(videos), "--output", str(tmp_path / "out"),
            "--checkpoint", str(tmp_path / "tiny.ckpt"), "--plan", "--plan-fps", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 listed: 3 to do, 0 done, 0 failed before" in printed
    assert "42 frames, 4 s of video (1 without a readable frame count)" in printed
    assert "0.01 actor-hours at 2.0 frames/s per actor (given)" in printed  # 42 / 2 / 3600
    assert not (tmp_path / "out").exists()  # nothing written, no actor started
