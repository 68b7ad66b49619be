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

Authentication: Ray 2.60 turns token authentication on by default when a head
starts (`ray start --head`), and its Jobs client sends no token unless
`RAY_AUTH_MODE=token` is set. Here the token is found the way Ray's own CLI
finds it (`--token-file`, else `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`, then
`~/.ray/auth_token`) and sent as `Authorization: Bearer ...`, which a cluster
without authentication ignores; a cluster that wants a token we do not have
gives one line saying where to put it.
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


class ClusterAuthError(RuntimeError):
    """The cluster refused us: one line that says which token to use and where."""


def find_token(token_file: str | Path | None = None) -> str | None:
    """The cluster token, looked for where Ray's own CLI looks; None if there is none."""
    if token_file is not None:
        path = Path(token_file).expanduser()
        if not path.is_file():
            raise ClusterAuthError(f"--token-file {path} does not exist")
        return path.read_text().strip() or None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    for candidate in (os.environ.get("RAY_AUTH_TOKEN_PATH"), "~/.ray/auth_token"):
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser().read_text().strip() or None
    return None


def client(address: str | None, token_file: str | Path | None = None):
    from ray.job_submission import JobSubmissionClient

    url = dashboard_address(address)
    token = find_token(token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return JobSubmissionClient(url, headers=headers)
    except Exception as error:
        raise _explain(error, url, token is not None) from error


def _explain(error: Exception, url: str, had_token: bool) -> Exception:
    text = str(error)
    lowered = text.lower()
    if "authentication" in lowered or "401" in lowered or "403" in lowered:
        if had_token:
            return ClusterAuthError(
                f"the Ray cluster at {url} rejected the token: use the head node's "
                "~/.ray/auth_token (`ray get-auth-token` there prints it) with --token-file"
            )
        return ClusterAuthError(
            f"the Ray cluster at {url} requires a token: copy the head node's ~/.ray/auth_token "
            "here (or pass --token-file FILE, or set RAY_AUTH_TOKEN)"
        )
    if "connection" in lowered or "failed to connect" in lowered or "refused" in lowered:
        return ClusterAuthError(f"cannot reach a Ray Jobs API at {url}: {text.splitlines()[0]}")
    return error


def call(api, method: str, *args, **kwargs):
    """One Jobs API call with the same one-line errors as `client`."""
    try:
        return getattr(api, method)(*args, **kwargs)
    except Exception as error:
        raise _explain(error, api.get_address(), bool(getattr(api, "_headers", None))) from error


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]  # <root>/platform/cluster/submit.py
    if not (root / "pyproject.toml").exists():
        raise RuntimeError(f"vda submit needs the project source; {root} has no pyproject.toml")
    return root


def build_package(workdir: Path) -> Path:
    """Build the project wheel and unpack it; returns the unpacked `vda/` directory."""
    wheels = workdir / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(project_root()),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("vda-*.whl")
    unpacked = workdir / "package"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked / "vda"


def submit(
    job: str,
    args: list[str],
    address: str | None = None,
    env_vars: dict[str, str] | None = None,
    token_file: str | Path | None = None,
) -> str:
    """Submit `vda <job> <args>`; returns the submission id."""
    api = client(address, token_file)  # before the wheel build: a refusal comes at once
    workdir = Path(tempfile.mkdtemp(prefix="vda-submit-"))
    try:
        package = build_package(workdir)
        args = list(args)
        if "--config" in args:
            index = args.index("--config") + 1
            args[index] = json.dumps(yaml.safe_load(Path(args[index]).read_text()) or {})
        entrypoint = entrypoint_for(job, args)
        return call(
            api,
            "submit_job",
            entrypoint=entrypoint,
            runtime_env={"py_modules": [str(package)], "env_vars": dict(env_vars or {})},
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def entrypoint_for(job: str, args: list[str]) -> str:
    """The job's command on the cluster: the preflight import check first (one line if the
    cluster's Python lacks the project's packages), then the job."""
    command = " ".join(["python", "-m", "vda.jobs.cli", job, *map(_quote, args)])
    return f"python -m vda.jobs.preflight && {command}"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def follow(
    submission_id: str,
    address: str | None = None,
    out=None,
    poll_s: float = 2.0,
    token_file: str | Path | None = None,
) -> str:
    """Print the job's logs as they grow until it ends; returns the final status."""
    out = out or sys.stdout  # looked up now: a default bound at import goes stale
    api = client(address, token_file)
    printed = 0
    while True:
        status = str(call(api, "get_job_status", submission_id)).rsplit(".", 1)[-1]
        logs = call(api, "get_job_logs", submission_id)
        if len(logs) > printed:
            out.write(logs[printed:])
            out.flush()
            printed = len(logs)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)
