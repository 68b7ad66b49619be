"""`vda bench plan`: what planning costs the driver per listed video, in seconds and bytes.

Two measurements, each at two sizes in fresh processes, so that what every
process pays once (Python, torch, the checkpoint) cancels out and the
difference is the cost per video (the slope):

- a real plan (`plan.plan_job`, LIST requests only) of N objects on a
  loopback S3 server, half of them done by an earlier run (a durable row
  each under `_manifests/done/`), and of N/2, each size in a bucket of its
  own; beside it, in the same process, boto3's bare listing of the same
  keys: the server's floor, which the plan cannot beat (moto spends time
  per object in the bucket on every page, S3 does not);
- the driver's in-memory part alone (ids, the done check, the to-do list)
  over synthetic keys, at M and M/2 (no server: a million in seconds).

Peak RSS is the process's high-water mark (`ru_maxrss`). The targets of a
million-video archive: 10^5 listed objects planned in <= 60 s, and <= 300
bytes of peak RSS per listed video.
"""

from __future__ import annotations

import io
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .loopback import loopback_s3
from .machine import describe_machine
from .scaling import in_child, peak_rss_mb, slope


def run_plan_bench(videos: int, real: int) -> dict:
    print(f"machine: {describe_machine()}", flush=True)
    report: dict = {"machine": describe_machine()}
    synthetic = [_child("synthetic", n) for n in (videos // 2, videos)]
    report["synthetic"] = slope(synthetic)
    _print("synthetic ids and done check", report["synthetic"])
    if real:
        with loopback_s3() as endpoint:
            # a bucket per size: moto's listing costs time per object in the whole bucket
            # (S3's does not), so the other size's objects would be counted against this one
            run = uuid.uuid4().hex[:8]
            sizes = (real // 2, real)
            for n in sizes:
                _fill(endpoint, f"plan-{run}-{n}", n)
            runs = [_child("listing", n, f"s3://plan-{run}-{n}/n{n}", endpoint) for n in sizes]
        report["listing"] = slope(runs)
        _print("plan_job on the loopback S3 server", report["listing"])
        large = runs[-1]
        print(
            f"the same objects listed bare (boto3's paginator, nothing else) on the same "
            f"server: {large['bare_listing_s']:.1f} s; the plan takes "
            f"{large['seconds'] / large['bare_listing_s']:.2f}x the bare listing",
            flush=True,
        )
    return report


def _print(what: str, result: dict) -> None:
    large = result["runs"][-1]
    print(
        f"{what}: {large['videos']:,} listed (half done) in {large['seconds']:.1f} s, "
        f"peak RSS {large['peak_rss_mb']:.0f} MB; per listed video "
        f"{result['us_per_video']:.1f} us and {result['bytes_per_video']:.0f} bytes "
        f"(slope between {result['runs'][0]['videos']:,} and {large['videos']:,})",
        flush=True,
    )


def _child(kind: str, videos: int, prefix: str = "", endpoint: str = "") -> dict:
    """One measurement in a fresh interpreter: its peak RSS is this plan's alone."""
    return in_child(
        "plan_scale", [kind, str(videos), prefix, endpoint], f"the {kind} plan of {videos}"
    )


def measure() -> None:
    """The child's side: everything but the plan itself is loaded before the clock starts."""
    kind, videos, prefix, endpoint = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if kind == "synthetic":  # plan_job's own split, over keys made here
        from ..infer.plan import ListedRow, iter_units, split_listed

        base = "s3://archive/videos"
        start = time.perf_counter()
        done = ListedRow("done")
        known = {f"shelf{i % 1000:03d}/clip{i:07d}": done for i in range(0, videos, 2)}
        inputs = ((f"{base}/shelf{i % 1000:03d}/clip{i:07d}.mp4", 0, None) for i in range(videos))
        listed, earlier, todo = split_listed(iter_units(inputs, base), known, {"done"})
        assert len(todo) == videos - len(earlier) and listed == videos
    else:
        from ..core.config import build
        from ..infer.config import InferConfig
        from ..infer.plan import check_before_start, plan_job

        config = build(
            InferConfig,
            {
                "input": f"{prefix}/videos",
                "output": f"{prefix}/depth",
                "checkpoint": f"{prefix}/model.ckpt",
                "s3": {"endpoint_url": endpoint, "region": "us-east-1"},
            },
        )
        check_before_start(config, check_writes=False)  # torch and the model: not the plan's
        start = time.perf_counter()
        plan = plan_job(config, check_writes=False)
        assert len(plan.todo) == videos - videos // 2, len(plan.todo)
    seconds = time.perf_counter() - start
    report = {"videos": videos, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}
    if kind != "synthetic":  # the floor on this server: what listing the same keys costs
        report["bare_listing_s"] = _bare_listing(endpoint, prefix)
    print(json.dumps(report))


def _bare_listing(endpoint: str, prefix: str) -> float:
    """Seconds to list the plan's two prefixes (the videos, the rows) with boto3 alone."""
    import boto3

    bucket, _, key = prefix.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2")
    start = time.perf_counter()
    for below in (f"{key}/videos/", f"{key}/depth/_manifests/"):
        for _ in pages.paginate(Bucket=bucket, Prefix=below):
            pass
    return time.perf_counter() - start


def _fill(endpoint: str, bucket: str, videos: int) -> None:
    """`videos` empty objects under <prefix>/videos, every other one with a done row, and a
    tiny checkpoint: what a listing sees of an archive half processed."""
    import boto3
    import botocore.config
    import torch

    from vda.model import VideoDepthAnything, save_checkpoint
    from vda.model.config import ModelConfig

    from ..infer.rows import row_uri

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=botocore.config.Config(max_pool_connections=32),
    )
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    prefix = f"s3://{bucket}/n{videos}"
    keys = []
    for i in range(videos):
        video_id = f"shelf{i % 1000:03d}/clip{i:07d}"
        keys.append(f"n{videos}/videos/{video_id}.mp4")
        if i % 2 == 0:  # s3://bucket/KEY
            keys.append(row_uri(f"{prefix}/depth", video_id, "done").split("/", 3)[3])
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b""), keys))
    buffer = io.BytesIO()
    torch.manual_seed(0)
    save_checkpoint(VideoDepthAnything(ModelConfig(size="tiny")), buffer)
    s3.put_object(Bucket=bucket, Key=f"n{videos}/model.ckpt", Body=buffer.getvalue())
    print(f"wrote {len(keys):,} objects in {time.perf_counter() - started:.0f} s", flush=True)
