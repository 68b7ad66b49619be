"""The bulk job's actor pool on real Ray clusters: sized from them, never hanging on them.

Every pool here takes every CPU of its cluster (or asks for more than it has):
the configurations users write, not ones that leave a spare CPU.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq
import pytest
from clusters import (
    head_log,
    node_ports,
    project_env,
    start_head,
    stop,
    wait_for_nodes,
    wait_for_port,
)
from helpers import short_clip_archive

from vda.jobs.cli import main
from vda.platform.core.config import build
from vda.platform.infer.config import InferConfig
from vda.platform.infer.job import run_infer
from vda.platform.storage import list_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _quiet_cluster(request):
    """Each test starts on a cluster whose CPUs are free: actors another test released are
    killed asynchronously, and a CPU still held by one would change what these tests see."""
    if "ray_cluster" not in request.fixturenames:
        return
    ray = request.getfixturevalue("ray_cluster")
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.fixture(scope="module")
def local_archive(tmp_path_factory):
    """8 short real videos in a local folder, and a tiny checkpoint."""
    return short_clip_archive(tmp_path_factory.mktemp("pool-archive"), 8, model_seed=7)


def _settings(root, output, tmp_path, *extra):
    return [
        "--input",
        str(root / "videos"),
        "--output",
        str(tmp_path / output),
        "--checkpoint",
        str(root / "tiny.ckpt"),
        "input_size=28",
        "outputs.preview=false",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        *extra,
    ]


def test_a_pool_larger_than_the_cluster_works_with_what_fits_and_says_so(
    local_archive, ray_cluster, tmp_path, capsys
):
    """6 actors asked of 2 CPUs: 2 start and do all the work; 4 are released after the
    start timeout with one line naming what they asked for and what the cluster has."""
    code = main(
        [
            "infer",
            *_settings(
                local_archive,
                "out",
                tmp_path,
                "actors.num_actors=6",
                "actors.start_timeout_s=8",
                "fault.frame_delay_s=0.5",
            ),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed[-2000:]
    assert "8 done, 0 failed" in printed
    released = [line for line in printed.splitlines() if "not placed after 8 s" in line]
    assert len(released) == 1, printed[-2000:]
    assert "actor(s) not placed" in released[0] and "each asks for CPU 1" in released[0]
    assert "the cluster has CPU 2" in released[0] and "going on with" in released[0]


def test_auto_starts_as_many_actors_as_the_cpus_hold_and_a_status_line_says_so(
    local_archive, ray_cluster, tmp_path
):
    lines: list[str] = []
    config = build(
        InferConfig,
        {
            "input": str(local_archive / "videos"),
            "output": str(tmp_path / "auto"),
            "checkpoint": str(local_archive / "tiny.ckpt"),
            "input_size": 28,
            "outputs": {"preview": False},
            "fault": {"frame_delay_s": 0.15},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        },
    )
    assert config.actors.num_actors == "auto"  # the default
    result = run_infer(config, progress=lines.append)
    assert result.count("done") == 8
    assert result.actors_peak == 2  # 2 CPUs / 1 CPU per actor
    assert any("actors 2 running" in line for line in lines), lines
    # at the tail idle actors are released: the last status line counts what was left
    assert "[8/8] 8 done" in lines[-1]
    nodes = {row.node for row in result.rows}
    assert len(nodes) == 1 and all(len(n) == 56 for n in nodes)  # the node's hex id


def test_no_actor_can_be_placed_ends_the_job_with_exit_status_2_and_nothing_done(
    local_archive, ray_cluster, tmp_path, capsys
):
    start = time.monotonic()
    code = main(
        [
            "infer",
            *_settings(
                local_archive,
                "gpu",
                tmp_path,
                "actors.gpus_per_actor=1",
                "actors.start_timeout_s=3",
            ),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2 and time.monotonic() - start < 60
    stopped = [line for line in captured.err.splitlines() if line.startswith("vda infer: stopped")]
    assert len(stopped) == 1, captured.err[-2000:]
    assert "actors started within 3 s" in stopped[0] and "GPU 1" in stopped[0]
    assert "the cluster has CPU 2, GPU 0" in stopped[0]
    assert not list_files(str(tmp_path / "gpu"), (".json", ".parquet", ".npz"))


def test_actors_that_die_while_starting_end_the_job_after_max_attempts(
    local_archive, ray_cluster, tmp_path, capsys
):
    code = main(
        [
            "infer",
            *_settings(
                local_archive, "dies", tmp_path, "fault.fail_start=true", "actors.max_attempts=2"
            ),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2, captured.out[-2000:]
    assert "actors failed to start 2 times in a row" in captured.err
    assert "fault injection: this actor cannot start" in captured.err
    assert not list_files(str(tmp_path / "dies"), (".json", ".parquet", ".npz"))


@pytest.fixture
def one_node_cluster(tmp_path):
    """A head with 1 CPU, started as `ray start --head`; a test adds a node to it later."""
    env = project_env(RAY_AUTH_MODE="disabled")
    temp_dir = tempfile.mkdtemp(prefix="raylate", dir="/tmp")
    head, port, _ = start_head(env, temp_dir, "24000-24999", num_cpus=1)
    processes = [head]
    try:
        wait_for_port(port, head, timeout=60, log=head_log(temp_dir))
        wait_for_nodes(f"127.0.0.1:{port}", 1, env)
        yield f"127.0.0.1:{port}", env, processes
    finally:
        stop(processes)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_node_that_joins_after_the_job_started_gets_actors_and_does_work(
    local_archive, one_node_cluster, tmp_path
):
    address, env, processes = one_node_cluster
    output = tmp_path / "late"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vda.jobs.cli",
            "infer",
            *_settings(
                local_archive,
                "late",
                tmp_path,
                "fault.frame_delay_s=0.5",
                "actors.check_s=1",
                "progress_s=2",
            ),
        ],
        env={**env, "RAY_ADDRESS": address},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        rows = output / "_manifests" / "done"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (rows.exists() and any(rows.iterdir())):
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            time.sleep(0.5)  # the job is working on the head's one CPU
        ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
        late_node = [
            ray_bin,
            "start",
            "--block",
            f"--address={address}",
            "--num-cpus=1",
            "--min-worker-port=25000",
            "--max-worker-port=25999",
            *node_ports(),
        ]
        node = subprocess.Popen(
            late_node,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        processes.append(node)
        out, _ = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out[-3000:]
    manifest = pq.read_table(io.BytesIO((output / "manifest.parquet").read_bytes())).to_pylist()
    assert [r["status"] for r in manifest] == ["done"] * 8
    assert len({r["node"] for r in manifest}) == 2, out[-3000:]  # the late node did work too
    assert "actors 2 running" in out
