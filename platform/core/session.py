"""A job's session on this machine: quiet terminals, Ray started or joined, nothing in $HOME.

Quiet by default: a job prints its own lines. Ray's, MLflow's and the other
frameworks' log records and Python warnings go to `vda.log` in the session
directory instead (`/tmp/vda-<uid>/session-<time>-<pid>/`); `vda --verbose ...`
(or `VDA_VERBOSE=1`, which Ray workers inherit) leaves them on the terminal
as the frameworks print them.

Joining a cluster has a deadline (`connect.py`): a wrong address, a missing
token or another Ray version is one line within `VDA_CONNECT_TIMEOUT_S`.

Nothing in the home directory: Ray 2.60 turns token authentication on for a
local `ray.init()` and writes the token to `~/.ray/auth_token` unless one is
configured. A job that starts a local Ray writes its token into its own
session directory instead (mode 0600) and points Ray there; a job that joins a
cluster (`RAY_ADDRESS`) or runs where `RAY_AUTH_MODE` is set leaves that to
the cluster's settings.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

VERBOSE_ENV = "VDA_VERBOSE"
# loggers of the frameworks under vda; their records are not the project's lines
FRAMEWORK_LOGGERS = (
    "ray",
    "mlflow",
    "alembic",
    "urllib3",
    "botocore",
    "boto3",
    "s3transfer",
    "torch",
    "timm",
    "huggingface_hub",
    "filelock",
    "fsspec",
    "py.warnings",
)

_session: Path | None = None
_handler: logging.Handler | None = None


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false", "no")


def session_dir() -> Path:
    """This process's session directory (under the system temp dir), made on first use."""
    global _session
    if _session is None:
        root = Path(tempfile.gettempdir()) / f"vda-{os.getuid() if hasattr(os, 'getuid') else 0}"
        root.mkdir(mode=0o700, exist_ok=True)
        _session = root / f"session-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        _session.mkdir(mode=0o700, exist_ok=True)
    return _session


def log_file() -> Path:
    return session_dir() / "vda.log"


def quiet_frameworks() -> None:
    """Unless verbose: the frameworks' records and Python warnings go to `log_file()`.

    Also, verbose or not: MLflow's usage telemetry is off unless the user set
    `MLFLOW_DISABLE_TELEMETRY` (it writes an installation id into ~/.config).
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow reads it at import
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if verbose():
        return
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # keep the handlers set here
    global _handler
    if _handler is None:  # one file handler for the process, however often this runs
        _handler = logging.FileHandler(log_file(), delay=True)
        _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler = _handler
    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> the file
    warnings.simplefilter("default")


def start_ray(**init_kwargs: Any) -> None:
    """`ray.init` as every vda job calls it: quiet unless verbose, the token out of $HOME.

    Does nothing when Ray is already up in this process (a test's cluster, a job
    run by `vda submit` whose driver connected already).
    """
    import ray

    from .connect import probe_cluster

    if ray.is_initialized():
        return
    local = not os.environ.get("RAY_ADDRESS") and not init_kwargs.get("address")
    if not local:  # ClusterConnectError: one line, within the deadline, instead of a long retry
        probe_cluster(init_kwargs.get("address"), connect_timeout_s())
    if local and "RAY_AUTH_MODE" not in os.environ and not _token_configured():
        token = session_dir() / "ray_auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        os.environ["RAY_AUTH_MODE"] = "token"  # what Ray would choose, said so: no warning
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
        # Ray read its settings when it was imported: have it read them again (what Ray's
        # own token set-up does after changing them)
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    loud = verbose()
    init_kwargs.setdefault("log_to_driver", loud)
    init_kwargs.setdefault("logging_level", logging.INFO if loud else logging.WARNING)
    ray.init(**init_kwargs)
    if not loud:
        quiet_frameworks()  # ray.init installs its own handlers: take them over again
        _raylet_messages_to_log()
        ray.data.DataContext.get_current().enable_progress_bars = False


def _raylet_messages_to_log() -> None:
    """The raylet's messages (worker start-up counts, a worker's death) to the log file.

    Ray prints them on the driver's stdout from a thread of its own whatever
    `log_to_driver` says (`ray._private.worker.listen_error_messages` calls the
    module's `print_to_stdstream`); the job reports what failed in its own words.
    """
    import ray._private.worker as ray_worker

    original = ray_worker.print_to_stdstream
    if getattr(original, "vda_quiet", False):
        return

    def to_log(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            logging.getLogger("ray").warning("(raylet) %s", " ".join(data.get("lines", [])))
        else:
            original(data, ignore_prefix)

    to_log.vda_quiet = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_log


def connect_timeout_s() -> float:
    """Seconds a job waits to join a cluster (`VDA_CONNECT_TIMEOUT_S`, default 20)."""
    return float(os.environ.get("VDA_CONNECT_TIMEOUT_S", "20"))


def _token_configured() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
