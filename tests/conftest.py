"""Real services for integration tests: a loopback S3 server (moto) and a local Ray cluster.

Nothing here is an in-process fake: moto runs as its own HTTP server process
and is reached through boto3 / pyarrow exactly as AWS would be; Ray is a real
local cluster, shared by the whole session because it takes seconds to start.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

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
from helpers import free_port

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# The same auth mode for every Ray process the tests start (Ray 2.60: a token
# written by one ray.init would otherwise lock a later second node out).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1; the standard AWS variables point at it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    try:
        wait_for_port(port, process)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
)


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh, empty bucket on the loopback server, created through boto3."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def _start_local_ray(temp_dir: str) -> None:
    import ray

    ray.init(
        num_cpus=LOCAL_CPUS,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        _temp_dir=temp_dir,
        log_to_driver=False,
        configure_logging=False,
    )


LOCAL_CPUS = 2
_local_ray_dirs: list[str] = []


@pytest.fixture(scope="session")
def ray_cluster(s3_endpoint):
    """One local Ray instance (2 CPUs, dashboard on) for the whole session.

    It depends on the S3 server so that the AWS variables are set before Ray
    starts: its worker processes inherit the environment of that moment.
    """
    import ray

    _local_ray_dirs.append(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    _start_local_ray(_local_ray_dirs[-1])
    try:
        yield ray
    finally:
        ray.shutdown()
        for temp_dir in _local_ray_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def hard_hang_ends_the_session(request):
    """pytest-timeout's signal is handled only when the main thread runs Python again; a
    test stuck inside C code would hold CI until its own limit. Past the test's timeout
    plus a grace, faulthandler's C thread prints every thread's stack and ends pytest."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker else float(request.config.getini("timeout"))
    faulthandler.dump_traceback_later(limit + HARD_HANG_GRACE_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


HARD_HANG_GRACE_S = 120.0


@pytest.fixture(autouse=True)
def ray_left_as_found(request):
    """After each test, the session's Ray has all its CPUs free again, or the test fails.

    A test that leaves an actor, task or placement group holding CPU would otherwise
    hang whatever comes next and needs every CPU (training waits for its workers
    without end). The leaker is named here, and the cluster is restarted so that the
    rest of the session runs."""
    yield
    import ray

    if "ray_cluster" not in request.fixturenames or not ray.is_initialized():
        return
    deadline = time.monotonic() + RELEASE_GRACE_S  # ray.kill and task ends free CPU soon after
    while ray.available_resources().get("CPU", 0.0) < LOCAL_CPUS:
        if time.monotonic() > deadline:
            held = _what_holds_ray()
            ray.shutdown()
            _local_ray_dirs.append(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
            _start_local_ray(_local_ray_dirs[-1])
            pytest.fail(f"the test left Ray's CPUs held {RELEASE_GRACE_S:.0f} s after it: {held}")
        time.sleep(0.2)


RELEASE_GRACE_S = 30.0


def _what_holds_ray() -> str:
    import ray
    from ray.util import state

    free = ray.available_resources().get("CPU", 0.0)
    try:
        actors = state.list_actors(filters=[("state", "=", "ALIVE")], timeout=10)
        tasks = state.list_tasks(filters=[("state", "=", "RUNNING")], timeout=10)
        groups = state.list_placement_groups(filters=[("state", "=", "CREATED")], timeout=10)
    except Exception as error:  # the description is best effort; the failure stands
        return f"{free} of {LOCAL_CPUS} CPUs free; the state API failed: {error}"
    return (
        f"{free} of {LOCAL_CPUS} CPUs free; alive actors "
        f"{[(a.class_name, a.name) for a in actors]}; running tasks {[t.name for t in tasks]}; "
        f"placement groups {[g.name for g in groups]}"
    )


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory):
    """A head started as a new user starts one, with token authentication on (Ray 2.60's
    default); its token lives in a file of its own, not in this machine's ~/.ray.
    Yields (dashboard URL, token file, GCS address)."""
    token = tmp_path_factory.mktemp("token-cluster") / "auth_token"
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    env = project_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    temp_dir = tempfile.mkdtemp(prefix="raytok", dir="/tmp")
    head, port, dashboard = start_head(env, temp_dir, "23000-23999")
    try:
        wait_for_port(dashboard, head, timeout=60, log=head_log(temp_dir))
        yield f"http://127.0.0.1:{dashboard}", token, f"127.0.0.1:{port}"
    finally:
        stop([head])
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def two_node_cluster(s3_endpoint, tmp_path_factory):
    """A real two-node Ray cluster on this machine: `ray start --head` plus `ray start --address`.

    Each node runs as a foreground `ray start --block` process of its own, so the
    teardown stops exactly these two nodes (`ray stop` would also stop the
    session's in-process cluster). Yields (GCS address, dashboard URL, env).
    """
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    temp_dir = tempfile.mkdtemp(prefix="ray2n", dir="/tmp")
    env = project_env(RAY_AUTH_MODE="disabled")
    head, port, dashboard = start_head(env, temp_dir, "21000-21999")
    processes = [head]
    try:
        wait_for_port(port, head, timeout=60, log=head_log(temp_dir))
        wait_for_port(dashboard, head, timeout=60, log=head_log(temp_dir))
        worker = subprocess.Popen(
            [
                ray_bin,
                "start",
                "--block",
                f"--address=127.0.0.1:{port}",
                "--num-cpus=2",
                "--min-worker-port=22000",
                "--max-worker-port=22999",
                *node_ports(),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        processes.append(worker)
        wait_for_nodes(f"127.0.0.1:{port}", 2, env)
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", env
    finally:
        stop(processes)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def shards_bucket(s3_endpoint):
    import boto3

    name = f"shards-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def synthetic_shards(shards_bucket, ray_cluster):
    """A small prepared synthetic data set in S3 (4 sequences x 16 frames of 28 x 42)."""
    from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare

    dst = f"s3://{shards_bucket}/data/synthetic"
    prepare(
        PrepareConfig(
            dst=dst,
            chunk_frames=8,
            synthetic=SyntheticOptions(sequences=4, frames=16, height=28, width=42),
        ),
        progress=lambda _: None,
    )
    return dst


# fixtures that start Ray or a server: a test using one must say so with its marker
SERVICE_FIXTURES = {
    "s3_endpoint",
    "bucket",
    "ray_cluster",
    "token_cluster",
    "two_node_cluster",
    "shards_bucket",
    "synthetic_shards",
}
SCENARIO_TIMEOUT_S = 900  # a test that starts services; a plain test has the ini's `timeout`


def pytest_collection_modifyitems(config, items):
    unmarked = []
    for item in items:
        uses_services = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        marked = item.get_closest_marker("integration") or item.get_closest_marker("long")
        if uses_services and not marked:
            unmarked.append(f"{item.nodeid} (uses {', '.join(sorted(uses_services))})")
        if marked and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT_S))
    if unmarked:
        raise pytest.UsageError(
            "tests that start Ray or a server must be marked integration (or long):\n  "
            + "\n  ".join(unmarked)
        )
