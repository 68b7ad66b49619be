"""Ship this project and a job's config to a Ray cluster and run a `vda` job there.

The project is built as a wheel (so the cluster runs exactly the submitted
code, as packaged) and the wheel's `vda/` package directory goes in
`runtime_env["py_modules"]`. The wheel file itself is not handed to Ray:
Ray installs a py_modules wheel with `pip install --target`, dependencies
included, which would try to pull torch and Ray onto every node; the cluster
image (Dockerfile) carries the dependencies. A `--config FILE` argument is
sent inline (`--config '{...}'`, JSON), which the job's config loader reads
like the file; no `working_dir` is used (a submitted training job lost its
working directory mid-run on a two-node test cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def dashboard_address(address: str | None) -> str:
    """The Jobs API URL: --address, else RAY_ADDRESS (if it is an http URL), else localhost."""
    address = address or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"
    return address if "://" in address else f"http://{address}"


def client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard_address(address))


def project_root() -> Path:
    import vda.jobs

    root = Path(vda.jobs.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        raise RuntimeError(f"vda submit needs the project source; {root} has no pyproject.toml")
    return root


def build_package(workdir: Path) -> Path:
    """Build the project wheel and unpack it; returns the unpacked `vda/` directory."""
    wheels = workdir / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(project_root())],
        check=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("vda-*.whl")
    unpacked = workdir / "package"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked / "vda"


def submit(
    job: str, args: list[str], address: str | None = None, env_vars: dict[str, str] | None = None
) -> str:
    """Submit `vda <job> <args>`; returns the submission id."""
    workdir = Path(tempfile.mkdtemp(prefix="vda-submit-"))
    try:
        package = build_package(workdir)
        args = list(args)
        if "--config" in args:
            index = args.index("--config") + 1
            args[index] = json.dumps(yaml.safe_load(Path(args[index]).read_text()) or {})
        entrypoint = " ".join(["python", "-m", "vda.jobs.cli", job, *map(_quote, args)])
        return client(address).submit_job(
            entrypoint=entrypoint,
            runtime_env={"py_modules": [str(package)], "env_vars": dict(env_vars or {})},
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def follow(
    submission_id: str, address: str | None = None, out=sys.stdout, poll_s: float = 2.0
) -> str:
    """Print the job's logs as they grow until it ends; returns the final status."""
    api = client(address)
    printed = 0
    while True:
        status = str(api.get_job_status(submission_id)).rsplit(".", 1)[-1]
        logs = api.get_job_logs(submission_id)
        if len(logs) > printed:
            out.write(logs[printed:])
            out.flush()
            printed = len(logs)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
