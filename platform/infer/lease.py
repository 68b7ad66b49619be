"""One job per output prefix: a lease object under it, enforced by the store's conditions.

Two drivers on one prefix would clear each other's staging (`_tmp/`) and
commit the same videos twice. So a job holds `<output>/_manifests/_LEASE.json`
(who holds it, until when) while it runs:

- **taken** with a conditional write (`storage.conditional`): created only
  if absent (S3 `If-None-Match: *`, locally `O_EXCL`), or, when the lease
  there has expired (or names a dead driver on this machine), replaced only
  if it is still the version that was read (`If-Match: <etag>`). Of two jobs
  that start in the same instant the store lets exactly one write win; the
  other refuses with one line.
- **renewed** every third of `lease_s`, again with `If-Match` on the etag
  of our last write. A renewal the store refuses means another job took the
  lease: the job is fenced at once (`lost` is set, `on_lost` is called: the
  scheduler kills its actors and ends with one line). A renewal that fails
  (storage unreachable) is retried every second or two until the lease
  would expire; then the job is fenced the same way, before anyone may take
  over.
- **released** at the end with `If-Match`: never deletes a successor's lease.

Fencing is by deadline: the holder stops committing before its lease
expires, and a taker waits for the expiry. Rows are written create-only as
well (`manifest.write_row`), so even a job fenced too late cannot commit a
video twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..storage import S3Settings, StorageError, join, retrying
from ..storage import conditional as cond

LEASE = "_manifests/_LEASE.json"


class LeaseHeld(RuntimeError):
    """Another live job holds the output prefix: one line saying which and until when."""


class LeaseLost(RuntimeError):
    """This job's lease was taken or could not be renewed in time: it stopped committing."""


class OutputLease:
    def __init__(
        self,
        output: str,
        lease_s: float,
        settings: S3Settings | None = None,
        on_lost: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uri = join(output, LEASE)
        self.output, self.lease_s, self.settings = output, lease_s, settings
        self.on_lost, self.clock = on_lost, clock
        self.owner = uuid.uuid4().hex
        self.etag: str | None = None
        self.expires = 0.0
        self.lost: str | None = None  # why this job no longer holds the prefix
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OutputLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        held = cond.read(self.uri, self.settings)
        expires = self.clock() + self.lease_s
        body = self._body(expires)
        try:
            if held is None:
                self.etag = cond.create(self.uri, body, self.settings)
            else:
                holder = _parse(held.data)
                if holder is not None and _alive(holder, self.clock()):
                    raise LeaseHeld(_describe(self.output, holder, self.uri))
                self.etag = cond.replace(self.uri, body, held.etag, self.settings)
            self.expires = expires
        except cond.PreconditionFailed:  # another job wrote it between our read and write
            winner = cond.read(self.uri, self.settings)
            holder = (_parse(winner.data) if winner else None) or {}
            raise LeaseHeld(_describe(self.output, holder, self.uri)) from None
        self._thread = threading.Thread(target=self._renew, daemon=True, name="lease")
        self._thread.start()

    def check(self) -> None:
        """Raise LeaseLost once the lease is gone: callers check before committing."""
        if self.lost is not None:
            raise LeaseLost(self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.lost is None and self.etag is not None:
            # refused (no longer ours) or unreachable: it expires by itself
            with contextlib.suppress(StorageError):
                cond.remove(self.uri, self.etag, self.settings)

    def _renew(self) -> None:
        pause = self.lease_s / 3
        while not self._stop.wait(pause):
            expires = self.clock() + self.lease_s
            try:
                self.etag = cond.replace(
                    self.uri, self._body(expires), self.etag or "", self.settings
                )
                self.expires = expires  # only a write that landed extends the lease
                pause = self.lease_s / 3
            except cond.PreconditionFailed:
                self._fence(
                    f"the lease on {self.output} was taken by another job; this job stopped "
                    "committing (was the driver paused longer than actors.lease_s?)"
                )
                return
            except Exception as error:  # storage unreachable: retry until it would expire
                margin = min(5.0, self.lease_s / 6)
                if self.clock() >= self.expires - margin:
                    self._fence(
                        f"could not renew the lease on {self.output} before it expired: "
                        f"{str(error).strip().splitlines()[0] if str(error).strip() else error!r}"
                    )
                    return
                pause = min(2.0, self.lease_s / 10)

    def _fence(self, reason: str) -> None:
        self.lost = reason
        self.on_lost(reason)

    def _body(self, expires: float) -> bytes:
        body = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": expires,
        }
        return json.dumps(body).encode()


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        held = json.loads(data)
    except ValueError:
        return None  # torn or foreign: not a lease anyone can hold
    return held if isinstance(held, dict) else None


def _alive(held: dict[str, Any], now: float) -> bool:
    if float(held.get("expires", 0)) < now:
        return False
    if held.get("host") == socket.gethostname():  # a driver on this machine: is it running?
        try:
            pid = int(held.get("pid", 0))
            if pid > 0:
                os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            return True
    return True


def _describe(output: str, held: dict[str, Any], uri: str) -> str:
    until = time.strftime("%H:%M:%S", time.localtime(float(held.get("expires", 0))))
    return (
        f"{output} is in use by another vda infer (pid {held.get('pid', '?')} on "
        f"{held.get('host', '?')}, lease until {until}); wait for it, or delete {uri} "
        "if that job is gone"
    )


def check_holder(output: str, owner: str, settings: S3Settings | None = None) -> None:
    """Raise LeaseLost unless the lease on `output` is `owner`'s and live: what an actor
    checks right before it commits, so a fenced job's actors stop committing too (the
    driver kills them as well, but a kill takes a moment to land). `owner` "" checks nothing
    (a unit run outside a job, as the tests and benchmarks do).

    The owner alone decides, not the expiry: this node's clock may differ from
    the driver's, and a lease that lapsed without a taker keeps no one out;
    the driver fences itself before its lease can lapse (`_renew`)."""
    if not owner:
        return
    uri = join(output, LEASE)
    held = retrying(lambda: cond.read(uri, settings), "check the job's lease")
    holder = _parse(held.data) if held is not None else None
    if holder is None or holder.get("owner") != owner:
        raise LeaseLost(f"the lease on {output} is no longer this job's; not committing")
