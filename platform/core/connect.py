"""Joining a Ray cluster with a deadline and a one-line answer when it cannot be joined.

`ray.init(address=...)` has no deadline of its own that a user would
accept: to a port where nothing listens it retries for about 14 minutes;
to a head that wants a token the driver lacks it logs `InvalidAuthToken`
once a second for 20 s and then raises a bare `ConnectionError`. So a job
that joins a cluster probes it first, within `timeout_s`:

1. a TCP connect to the GCS address: nothing answers there;
2. the token, where token mode is on: Ray's own check would end the
   process (a failed C++ assertion) when no token can be loaded;
3. one GCS call (in a thread, since Ray's client has no deadline):
   the head wants a token, rejects ours, or is not a Ray GCS at all;
4. the cluster's Ray and Python versions against this driver's.

Each failure is a `ClusterConnectError` with one line naming the address
and what to change. Only then does `ray.init` run.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

TOKEN_HELP = (
    "set RAY_AUTH_MODE=token and give the cluster's token in RAY_AUTH_TOKEN, in a file named by "
    "RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token"
)


class ClusterConnectError(ConnectionError):
    """The cluster at an address cannot be joined: one line saying why."""


def probe_cluster(address: str | None, timeout_s: float = 20.0) -> None:
    """Raise ClusterConnectError unless a driver can join the cluster at `address` (or
    RAY_ADDRESS); None and "auto" without RAY_ADDRESS mean a local cluster: nothing to probe."""
    from ray._private import services

    deadline = time.monotonic() + timeout_s
    if address in (None, "auto") and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if address is None or address.startswith("ray://"):
        return  # a new local cluster, or Ray Client (its own protocol: ray.init reports it)
    try:
        bootstrap = services.canonicalize_bootstrap_address(address)
    except Exception as error:
        raise ClusterConnectError(f"cannot resolve the Ray address {address!r}: {error}") from None
    if bootstrap is None:
        return
    from ray._common.network_utils import parse_address

    host, port = parse_address(bootstrap)  # [v6]:port too
    _reachable(host, int(port), address, timeout_s)
    if address == "auto":  # ray.init turns token mode on by itself here when a token exists
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    token_mode = _check_token(address)
    meta = _ask_gcs(bootstrap, address, token_mode, max(0.5, deadline - time.monotonic()))
    _check_versions(meta, address)


def _reachable(host: str, port: int, address: str, timeout_s: float) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except TimeoutError:
        raise ClusterConnectError(
            f"no answer from the Ray cluster at {address} within {timeout_s:g} s "
            "(host down, unroutable or firewalled?)"
        ) from None
    except OSError as error:
        raise ClusterConnectError(
            f"nothing answers at the Ray address {address}: {error.strerror or error} "
            "(is the head running, and is that its GCS port?)"
        ) from None


def _check_token(address: str) -> bool:
    """Whether token mode is on; raises when it is and no token can be loaded."""
    from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode
    from ray.exceptions import AuthenticationError

    if get_authentication_mode() != AuthenticationMode.TOKEN:
        return False
    try:
        found = AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)
    except AuthenticationError as error:
        message = " ".join(str(getattr(error, "message", error)).split())
        raise ClusterConnectError(f"RAY_AUTH_MODE=token, but the token: {message}") from None
    if not found:
        raise ClusterConnectError(
            f"RAY_AUTH_MODE=token, but no token to join {address} was found; {TOKEN_HELP}"
        )
    return True


def _ask_gcs(bootstrap: str, address: str, token_mode: bool, timeout_s: float) -> bytes | None:
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    answer: dict = {}

    def ask() -> None:
        try:
            client = GcsClient(address=bootstrap)  # checks the token
            answer["meta"] = client.internal_kv_get(
                b"CLUSTER_METADATA", namespace=b"cluster", timeout=timeout_s
            )
        except BaseException as error:
            answer["error"] = error

    thread = threading.Thread(target=ask, name="ray-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ClusterConnectError(
            f"{address} accepts connections but did not answer as a Ray cluster within "
            f"{timeout_s:.0f} s (the dashboard's or the client's port instead of the GCS port?)"
        )
    error = answer.get("error")
    if isinstance(error, AuthenticationError):
        if token_mode:
            raise ClusterConnectError(
                f"the Ray cluster at {address} rejected the token from {_token_source()}; "
                "use the token its head was started with"
            ) from None
        raise ClusterConnectError(
            f"the Ray cluster at {address} wants a token (token authentication is on there, "
            f"RAY_AUTH_MODE is {os.environ.get('RAY_AUTH_MODE', 'unset')} here); {TOKEN_HELP}"
        ) from None
    if error is not None:
        first = " ".join(str(error).split())[:200]
        raise ClusterConnectError(
            f"{address} answered, but not as a Ray cluster's GCS ({first}); check the port"
        ) from None
    return answer.get("meta")


def _check_versions(meta: bytes | None, address: str) -> None:
    if not meta:
        return
    from ray._private.utils import check_version_info, compute_version_info

    info = json.loads(meta)
    try:
        check_version_info(info, "this driver")
    except RuntimeError:
        ray_version, python_version = compute_version_info()[:2]
        raise ClusterConnectError(
            f"the Ray cluster at {address} runs Ray {info.get('ray_version')} on Python "
            f"{info.get('python_version')}, this driver Ray {ray_version} on Python "
            f"{python_version}: use the same versions (the cluster's image or environment)"
        ) from None


def _token_source() -> str:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    return str(Path.home() / ".ray" / "auth_token")
