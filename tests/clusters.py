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


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
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
    head = subprocess.Popen(
        [*ray_cli, "start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={free_port()}", f"--temp-dir={temp_dir}",
         f"--min-worker-port={low}", f"--max-worker-port={high}", *node_ports()],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    return head, port, dashboard


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
