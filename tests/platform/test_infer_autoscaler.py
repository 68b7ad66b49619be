"""`vda infer` on Ray's own autoscaler (`fake_multinode`: real raylets launched and terminated
by the real autoscaler on this machine): it grows onto the nodes it asked for, and the nodes
go when the job ends, when its driver is killed, and only its own when another job runs.

Only the processes these tests start are stopped (by session id), never `ray stop`.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from clusters import alive_nodes, kill_session, project_env, start_autoscaling_head, wait_for_port
from helpers import short_clip_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL_S = 8


@pytest.fixture(scope="module")
def autoscaling_cluster():
    """The head (1 CPU) of a `fake_multinode` cluster, up to 2 workers of 1 CPU; (GCS address,
    env). Its start is tried up to 3 times, each in a fresh folder with fresh ports: one of
    three full-suite runs here saw `ray start` exit at once, twice (its output is kept now)."""
    env = project_env(RAY_AUTH_MODE="disabled")
    said = []
    for _attempt in range(3):
        workdir = tempfile.mkdtemp(prefix="fa", dir="/tmp")  # short: socket paths are bounded
        head, address = start_autoscaling_head(env, workdir, max_workers=2, idle_minutes=0.1)
        try:
            wait_for_port(int(address.rsplit(":", 1)[1]), head, timeout=60)
            break
        except RuntimeError as error:
            kill_session(head.pid)
            said.append(f"{error}: {Path(workdir, 'head.log').read_text(errors='replace')[-2000:]}")
            shutil.rmtree(workdir, ignore_errors=True)
            time.sleep(3)
    else:
        raise RuntimeError("the autoscaling head did not start:\n" + "\n".join(said))
    try:
        yield address, env
    finally:
        kill_session(head.pid)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return short_clip_archive(tmp_path_factory.mktemp("autoscaled"), 12, model_seed=9, digits=2)


def _job(clips, output, tmp_path, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vda.jobs.cli",
        "infer",
        "--input",
        str(clips / "videos"),
        "--output",
        str(output),
        "--checkpoint",
        str(clips / "tiny.ckpt"),
        "input_size=28",
        "outputs.preview=false",
        "actors.max_actors=3",
        "actors.cpus_per_actor=1",
        "actors.check_s=1",
        f"actors.autoscaler_ttl_s={TTL_S}",
        "fault.frame_delay_s=0.4",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        *extra,
    ]


def _wait(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def test_the_pool_grows_onto_launched_nodes_and_they_go_after_the_job_or_its_killed_driver(
    autoscaling_cluster, clips, tmp_path
):
    address, env = autoscaling_cluster
    env = {**env, "RAY_ADDRESS": address}
    # (a) undisturbed: the autoscaler launches the two workers the job asks for
    done = subprocess.run(
        _job(clips, tmp_path / "a", tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = pq.read_table(io.BytesIO((tmp_path / "a" / "manifest.parquet").read_bytes()))
    rows = manifest.to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 12
    assert len({r["node"] for r in rows}) >= 2, done.stdout[-3000:]  # launched nodes did work
    _wait(lambda: alive_nodes(address, env) == 1, 90, "the idle workers were terminated")

    # (b) the driver SIGKILLed mid-job: its share of the request lapses, the workers go
    rows_dir = tmp_path / "b" / "_manifests" / "done"
    driver = subprocess.Popen(
        _job(clips, tmp_path / "b", tmp_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: alive_nodes(address, env) == 3, 120, "the job's nodes were launched")
        _wait(lambda: rows_dir.exists() and len(os.listdir(rows_dir)) >= 2, 120, "2 videos")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    assert len(os.listdir(rows_dir)) < 12  # killed mid-job
    # without expiry the request would hold both workers for good (Ray keeps it): they go
    # after the share's expiry plus the idle timeout (6 s) and the autoscaler's rounds
    _wait(lambda: alive_nodes(address, env) == 1, TTL_S + 90, "the workers went")


@pytest.mark.long
def test_a_job_that_ends_does_not_take_the_nodes_of_a_job_still_running(
    autoscaling_cluster, clips, tmp_path
):
    address, env = autoscaling_cluster
    env = {**env, "RAY_ADDRESS": address}
    _wait(lambda: alive_nodes(address, env) == 1, 120, "a quiet cluster to start from")
    long_job = subprocess.Popen(
        _job(clips, tmp_path / "long", tmp_path, "fault.frame_delay_s=1.5"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(lambda: alive_nodes(address, env) == 3, 120, "the long job's nodes")
        short = subprocess.run(
            _job(
                clips,
                tmp_path / "short",
                tmp_path,
                "actors.max_actors=1",
                "actors.num_actors=1",
                "fault.frame_delay_s=0",
            ),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert short.returncode == 0, short.stdout[-2000:] + short.stderr[-2000:]
        # the short job dropped its share only: the long job's workers stay while it runs
        for _ in range(20):
            assert long_job.poll() is None or long_job.returncode == 0
            if long_job.poll() is not None:
                break
            assert alive_nodes(address, env) == 3
            time.sleep(1)
        out, _ = long_job.communicate(timeout=400)
    finally:
        if long_job.poll() is None:
            long_job.kill()
    assert long_job.returncode == 0, out[-3000:]
