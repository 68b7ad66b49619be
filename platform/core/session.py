"""A job's session on this machine: quiet terminals, Ray started or joined, nothing in $HOME.

Quiet by default: a job prints its own lines. Ray's, MLflow's and the other
frameworks' log records and Python warnings go to `vda.log` in the session
directory instead (`/tmp/vda-<uid>/session-<time>-<pid>/`); `vda --verbose ...`
(or `VDA_VERBOSE=1`, which Ray workers inherit) leaves them on the terminal
as the frameworks print them.

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
    "ray", "mlflow", "alembic", "urllib3", "botocore", "boto3", "s3transfer", "torch",
    "timm", "huggingface_hub", "filelock", "fsspec", "py.warnings",
)  # fmt: skip

_session: Path | None = None


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
    """Unless verbose: the frameworks' records and Python warnings go to `log_file()`."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow reads it at import
    if verbose():
        return
    handler = logging.FileHandler(log_file(), delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
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

    if ray.is_initialized():
        return
    local = not os.environ.get("RAY_ADDRESS") and not init_kwargs.get("address")
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
        ray.data.DataContext.get_current().enable_progress_bars = False


def _token_configured() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
