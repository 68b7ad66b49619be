"""One job per output prefix: a lease object under it, renewed while the job runs.

Two drivers on one prefix would clear each other's staging (`_tmp/`) and
commit the same videos twice. So a job writes `<output>/_manifests/_LEASE.json`
(who holds it, until when) before any work, renews it every third of
`lease_s`, and deletes it at the end. A second job finds a live lease and
refuses with one line. A job that crashed leaves a lease that expires after
`lease_s`; one whose driver died on this very machine (its pid is gone) is
taken over at once, so a rerun after a killed driver need not wait.

Object stores have no compare-and-swap here (pyarrow), so the lease is
written, then read back after a moment: of two jobs that started in the
same instant, the one whose write was overwritten sees the other's and
steps back.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from ..storage import S3Settings, StorageError, join, read_bytes, write_bytes
from ..storage.objects import delete

LEASE = "_manifests/_LEASE.json"


class LeaseHeld(RuntimeError):
    """Another live job holds the output prefix: one line saying which and until when."""


class OutputLease:
    def __init__(
        self, output: str, lease_s: float, settings: S3Settings | None = None, settle_s: float = 0.5
    ) -> None:
        self.uri = join(output, LEASE)
        self.output, self.lease_s, self.settings, self.settle_s = (
            output,
            lease_s,
            settings,
            settle_s,
        )
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OutputLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        held = self._read()
        if held is not None and held.get("owner") != self.owner and _alive(held):
            raise LeaseHeld(_describe(self.output, held, self.uri))
        self._write()
        time.sleep(self.settle_s)  # a job that wrote at the same instant: one write wins
        held = self._read()
        if held is None or held.get("owner") != self.owner:
            raise LeaseHeld(_describe(self.output, held or {}, self.uri))
        self._thread = threading.Thread(target=self._renew, daemon=True, name="lease")
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(StorageError):
            held = self._read()
            if held is not None and held.get("owner") == self.owner:
                delete(self.uri, self.settings)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with contextlib.suppress(StorageError):  # a blip: the next renewal tries again
                self._write()

    def _write(self) -> None:
        body = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": time.time() + self.lease_s,
        }
        write_bytes(self.uri, json.dumps(body).encode(), self.settings)

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(read_bytes(self.uri, self.settings))
        except StorageError as error:
            if "does not exist" in str(error):
                return None
            raise
        except ValueError:
            return None  # torn or foreign: not a lease anyone can hold


def _alive(held: dict[str, Any]) -> bool:
    if float(held.get("expires", 0)) < time.time():
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
