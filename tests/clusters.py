"""Real Ray clusters and servers on this machine, for the fixtures and the tests that need
their own (a head started with `ray start`, a node that joins later)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time

from helpers import free_port


def wait_for_port(
    port: int, process: subprocess.Popen, timeout: float = 30.0, log: str | None = None
) -> None:
    """Until something listens on `port`; a server that exits first is an error that
    quotes the end of its `log`, so a failed start says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = ""
            if log and os.path.exists(log):
                with open(log, errors="replace") as handle:
                    said = ": " + handle.read()[-2000:]
            raise RuntimeError(f"server exited with {process.returncode}{said}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def node_ports() -> list[str]:
    """Explicit free ports for one node, so two clusters on one machine never collide."""
    flags = (
        "--node-manager-port",
        "--object-manager-port",
        "--metrics-export-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
    )
    return [f"{flag}={free_port()}" for flag in flags]


def start_head(
    env: dict, temp_dir: str, worker_ports: str, num_cpus: int = 2, python: str | None = None
) -> tuple[subprocess.Popen, int, int]:
    """`ray start --head --block` in a process group of its own; (process, GCS port, dashboard).

    `python`: the interpreter the node (and so every job and worker on it) runs with."""
    ray_cli = [python or sys.executable, "-m", "ray.scripts.scripts"]
    port, dashboard = free_port(), free_port()
    low, high = worker_ports.split("-")
    log = open(head_log(temp_dir), "ab")  # noqa: SIM115 - handed to the child
    head = subprocess.Popen(
        [
            *ray_cli,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            f"--num-cpus={num_cpus}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={temp_dir}",
            f"--min-worker-port={low}",
            f"--max-worker-port={high}",
            *node_ports(),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()  # the child holds its own copy
    return head, port, dashboard


def head_log(temp_dir: str) -> str:
    """Where start_head keeps what `ray start` printed (for wait_for_port's error)."""
    return os.path.join(temp_dir, "head.log")


def stop(processes: list[subprocess.Popen]) -> None:
    import signal

    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    # a test cluster's state is not needed after its tests: a `ray start --block` node that
    # has not exited on SIGTERM within a few seconds is killed (waiting 30 s cost a minute a run)
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def project_env(**extra: str) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **extra}
    # job entrypoints run `python`: the project's, as a cluster image puts its Python on PATH
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def wait_for_nodes(address: str, count: int, env: dict, timeout: float = 90.0) -> None:
    code = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", code, address], env=env, capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    raise TimeoutError(f"the cluster at {address} did not reach {count} live nodes")


def session_pids(session: int) -> list[int]:
    """Live processes of a session: a `ray start --head` run with start_new_session=True has
    its pid as session id, and every process of its cluster inherits it (the raylet gives
    workers process groups of their own, so a process-group kill misses them)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def kill_session(session: int, grace_s: float = 5.0) -> None:
    """Stop every process of one cluster (see session_pids), never `ray stop`."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(session):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while session_pids(session) and time.monotonic() < deadline:
            time.sleep(0.2)


def autoscaling_config(gcs_address: str, max_workers: int, idle_minutes: float) -> dict:
    """A `fake_multinode` cluster (real raylets on this machine, launched and terminated by
    Ray's own autoscaler): a head of 1 CPU, up to `max_workers` workers of 1 CPU. The wheel
    lacks Ray's example file, so the keys it holds are written out here."""
    return {
        "cluster_name": "fake_multinode",
        "max_workers": max_workers,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "ray.worker.cpu": {
                "resources": {"CPU": 1, "object_store_memory": 100 * 1024**2},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "docker": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_minutes,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


def start_autoscaling_head(
    env: dict, workdir: str, max_workers: int = 2, idle_minutes: float = 0.1
) -> tuple[subprocess.Popen, str]:
    """`ray start --head --autoscaling-config` (1 CPU) in a session of its own; (process,
    GCS address). Stop it with kill_session(process.pid)."""
    import yaml

    port = free_port()
    address = f"127.0.0.1:{port}"
    config = os.path.join(workdir, "autoscaling.yaml")
    with open(config, "w") as handle:
        yaml.safe_dump(autoscaling_config(address, max_workers, idle_minutes), handle)
    low = 20000  # clear of Ray's default worker ports and of the other fixed ranges
    head_env = {
        **env,
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    head_env.pop("RAY_ADDRESS", None)
    with open(os.path.join(workdir, "head.log"), "ab") as log:  # what `ray start` said
        head = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ray.scripts.scripts",
                "start",
                "--head",
                "--block",
                f"--autoscaling-config={config}",
                f"--port={port}",
                "--num-cpus=1",
                f"--temp-dir={os.path.join(workdir, 'rt')}",
                f"--object-store-memory={100 * 1024**2}",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",
                f"--min-worker-port={low}",
                f"--max-worker-port={low + 200}",
                *node_ports(),
            ],
            env=head_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return head, address


def alive_nodes(address: str, env: dict) -> int:
    code = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, address], env=env, capture_output=True, text=True
    )
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if out.returncode == 0 and lines else -1
