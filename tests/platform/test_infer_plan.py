"""Planning `vda infer` over an archive: listings, not a request per video; `--plan`."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pyarrow.parquet as pq
import pytest
from clusters import wait_for_port
from helpers import free_port, tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.platform.core.config import build
from vda.platform.infer.compact import compact, merges_of, read_merge, winners
from vda.platform.infer.config import InferConfig
from vda.platform.infer.manifest import (
    ManifestParts,
    ManifestRow,
    manifest_table,
)
from vda.platform.infer.plan import plan_job
from vda.platform.infer.rows import read_row_at, write_row
from vda.platform.storage import S3Settings, open_output

pytestmark = pytest.mark.integration

REQUEST = re.compile(r'"\S*(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP')


@dataclass
class LoggedS3:
    endpoint: str
    log: Path  # the server's request log (werkzeug's, one line a request)
    settings: S3Settings
    bucket: str
    client: Any


@pytest.fixture
def logged_s3(tmp_path, monkeypatch):
    """A moto server of its own, with a bucket, whose request log we read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            config=botocore.config.Config(max_pool_connections=32),
        )
        bucket = f"plan-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=bucket)
        settings = S3Settings(endpoint_url=endpoint, region="us-east-1")
        yield LoggedS3(endpoint, tmp_path / "moto.log", settings, bucket, client)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _requests(log, since: int) -> list[tuple[str, str]]:
    time.sleep(0.3)  # the server writes its log line after the response
    lines = log.read_text().splitlines()[since:]
    return [m.groups() for line in lines if (m := REQUEST.search(line))]


@pytest.mark.slow
def test_planning_1100_videos_after_a_killed_run_lists_and_reads_no_row(logged_s3, tmp_path):
    """1,100 listed videos: 1,004 done and 1 failed by a run that finished (in its manifest),
    3 more by a run killed after its last part file. Planning is listings only; the end of
    the next run reads the merges and, one by one, only the killed run's late rows."""
    endpoint, log, settings = logged_s3.endpoint, logged_s3.log, logged_s3.settings
    bucket, s3 = logged_s3.bucket, logged_s3.client
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
    with open_output(f"{output}/manifest.parquet", settings) as handle:
        pq.write_table(manifest_table(merged), handle)
    late = [row(1004, "done"), row(1005, "done"), row(1006, "failed")]  # the killed run's
    for r in late:
        write_row(output, r, settings)

    config = build(
        InferConfig,
        {
            "input": f"s3://{bucket}/videos",
            "output": output,
            "checkpoint": f"s3://{bucket}/models/tiny.ckpt",
            "s3": {"endpoint_url": endpoint, "region": "us-east-1"},
        },
    )
    since = len(log.read_text().splitlines())
    plan = plan_job(config)
    requests = _requests(log, since)

    assert plan.listed == 1100 and len(plan.todo) == 93
    assert {v.video_id for v in plan.todo} == set(ids[1007:])
    assert plan.earlier[ids[1004]].status == "done"  # its retry committed: done wins
    assert plan.earlier[ids[1006]].status == "failed" and plan.failed_before == 1
    listings = [path for method, path in requests if method == "GET" and "list-type=2" in path]
    assert len(listings) == 2 * math.ceil(1100 / 1000)  # inputs: 2 pages; rows: 2 pages
    reads = [p for m, p in requests if m in ("GET", "HEAD") and "list-type=2" not in p]
    assert not [p for p in reads if "/_manifests/" in p], reads  # not one row read
    # the rest is constant: the write probe and the checkpoint
    assert len(requests) <= len(listings) + 12, requests

    since = len(log.read_text().splitlines())
    merges, _ = merges_of(output, settings)
    picked = winners(merges, plan.located(output), settings, lambda u: read_row_at(u, settings))
    requests = _requests(log, since)
    rows = {r["video_id"]: r for r in picked.to_pylist()}
    assert len(rows) == 1007 and rows[ids[5]]["frames"] == 5  # from the manifest
    assert rows[ids[1004]]["status"] == "done" and rows[ids[1006]]["status"] == "failed"
    row_reads = [
        p for m, p in requests if m == "GET" and "/_manifests/" in p and "list-type" not in p
    ]
    assert len(row_reads) == len(late), row_reads  # only the killed run's late rows


@pytest.mark.long
def test_plan_of_20000_videos_half_done_lists_pages_and_reads_only_its_sample(logged_s3, tmp_path):
    """`vda infer --plan` over 20,000 objects, half of them done: the listings (a page per
    1,000 keys), the sampled headers, and a constant; no request per video."""
    endpoint, log, settings = logged_s3.endpoint, logged_s3.log, logged_s3.settings
    bucket, s3 = logged_s3.bucket, logged_s3.client
    count, sample = 20_000, 40
    ids = [f"shelf{i % 20:02d}/clip{i:05d}" for i in range(count)]
    output = f"s3://{bucket}/depth"
    done = [ManifestRow(f"s3://{bucket}/videos/{v}.mp4", v, status="done") for v in ids[::2]]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda v: s3.put_object(Bucket=bucket, Key=f"videos/{v}.mp4", Body=b""), ids))
        list(pool.map(lambda r: write_row(output, r, settings), done))
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    s3.upload_file(str(tmp_path / "tiny.ckpt"), bucket, "models/tiny.ckpt")
    argv = [
        "infer",
        "--plan",
        "--plan-sample",
        str(sample),
        "--input",
        f"s3://{bucket}/videos",
        "--output",
        output,
        "--checkpoint",
        f"s3://{bucket}/models/tiny.ckpt",
        f"s3.endpoint_url={endpoint}",
        "s3.region=us-east-1",
    ]
    since = len(log.read_text().splitlines())
    assert main(argv) == 0
    requests = _requests(log, since)
    listings = [path for method, path in requests if method == "GET" and "list-type=2" in path]
    # inputs: 20 pages; done rows: 10 (the rows of a status share a prefix)
    assert len(listings) <= 2 * math.ceil(count / 1000), len(listings)
    video_reads = {p for m, p in requests if "/videos/" in p and "list-type=2" not in p}
    assert len(video_reads) <= sample  # the sampled headers alone
    # per sampled header: a HEAD and a ranged GET or two; the rest is constant
    assert len(requests) <= len(listings) + 3 * sample + 16, len(requests)


def test_the_driver_merges_rows_into_parts_as_they_arrive(tmp_path):
    clock = [0.0]
    parts = ManifestParts(str(tmp_path), merge_s=10, merge_rows=3, clock=lambda: clock[0])
    for i in range(4):
        parts.add(ManifestRow(f"v{i}.mp4", f"v{i}", status="done", frames=i))
    assert len(parts.written) == 1 and len(parts.pending) == 1  # 3 rows: a part
    clock[0] = 10.0
    parts.add(ManifestRow("v4.mp4", "v4", status="failed"))  # 10 s since: a part
    assert len(parts.written) == 2 and not parts.pending
    wanted = {f"v{i}": ("done", "") for i in range(4)} | {"v4": ("failed", "")}
    done = compact(str(tmp_path), wanted)
    rows = {r["video_id"]: r for r in read_merge(done.manifest).to_pylist()}
    assert sorted(rows) == ["v0", "v1", "v2", "v3", "v4"] and rows["v3"]["frames"] == 3
    assert sorted(done.parts) == sorted(parts.written)


@pytest.mark.slow
def test_plan_prints_the_work_ahead_without_starting_anything(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i, count in enumerate((12, 30)):
        write_mp4v(videos / f"v{i}.mp4", moving_frames(count, 28, 42, seed=i), fps=10)
    (videos / "broken.mp4").write_bytes(b"not a video")
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    assert main(_plan_argv(videos, tmp_path)) == 0
    printed = capsys.readouterr().out
    assert re.search(r"3 listed: 3 to do \([\d.]+ MB\), 0 done, 0 failed before", printed)
    assert "42 frames, 4 s of video (1 without a readable frame count)" in printed
    assert "0.01 actor-hours at 2.0 frames/s per actor (given)" in printed  # 42 / 2 / 3600
    assert not (tmp_path / "out").exists()  # nothing written, no actor started


@pytest.mark.slow
def test_plan_estimates_from_a_sample_of_headers_with_an_interval(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    lengths = [4 + (i * 7) % 29 for i in range(40)]  # 4 to 32 frames
    for i, count in enumerate(lengths):
        write_mp4v(videos / f"v{i:02d}.mp4", moving_frames(count, 28, 42, seed=i), fps=10)
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    argv = _plan_argv(videos, tmp_path, "--plan-sample", "12")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("to do"))
    assert "95% intervals from 12 of 40 headers, scaled by bytes" in line, line
    match = re.search(r"to do +([\d,]+) ± ([\d,]+) frames", line)
    estimate, half = (float(g.replace(",", "")) for g in match.groups())
    assert 0 < half < estimate and abs(estimate - sum(lengths)) <= half  # the truth is inside
    assert re.search(r"estimate +[\d.]+ ± [\d.]+ actor-hours at 2.0 frames/s", printed)


def _plan_argv(videos, tmp_path, *extra: str) -> list[str]:
    """`vda infer --plan` over a local folder with the tiny checkpoint, at 2 frames/s."""
    return [
        "infer",
        "--input",
        str(videos),
        "--output",
        str(tmp_path / "out"),
        "--checkpoint",
        str(tmp_path / "tiny.ckpt"),
        "--plan",
        "--plan-fps",
        "2",
        *extra,
    ]
