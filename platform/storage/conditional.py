"""Writes that the store itself refuses when they would overwrite what they should not.

Two jobs on one output prefix, or one job's retried attempt racing its own
earlier one, must not both believe they won. A read-back after a pause
cannot promise that (a slow or retried PUT lands later); a conditional
write can:

- `create(uri, data)`: only if nothing is there (S3 `If-None-Match: *`;
  locally a hard link of a finished temporary file, which fails if the name
  exists: `O_EXCL` semantics with the content complete when it appears);
- `replace(uri, data, etag)`: only if the object is still the one read
  (S3 `If-Match: <etag>`; locally under an exclusive `flock` of a lock file,
  comparing the content's hash);
- `remove(uri, etag)`: the same condition for a delete.

Each returns or takes the object's entity tag (`Versioned.etag`); a refused
condition raises `PreconditionFailed`. Local locking is per machine (and
per NFS server that honours `flock`); S3's conditions hold across machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .objects import S3Settings, StorageError, _explain, _s3_client, is_s3, resolve


class PreconditionFailed(StorageError):
    """The store refused a conditional write: the object exists, or changed since it was read."""


@dataclass(frozen=True)
class Versioned:
    data: bytes
    etag: str


def read(uri: str, settings: S3Settings | None = None) -> Versioned | None:
    """The object and its entity tag, or None when there is none."""
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client(settings or S3Settings())
        try:
            reply = client.get_object(Bucket=bucket, Key=key)
            return Versioned(reply["Body"].read(), reply["ETag"])
        except client.exceptions.NoSuchKey:
            return None
        except Exception as error:
            raise _explain("read", uri, error, settings) from error
    path = Path(resolve(uri)[1])
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _explain("read", uri, error, settings) from error
    return Versioned(data, _local_etag(data))


def create(uri: str, data: bytes, settings: S3Settings | None = None) -> str:
    """Write `data` only if no object is at `uri`; its entity tag."""
    if is_s3(uri):
        return _put(uri, data, settings, IfNoneMatch="*")
    path = Path(resolve(uri)[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    temporary.write_bytes(data)
    try:
        os.link(temporary, path)  # atomic, and refused if the name exists
    except FileExistsError as error:
        raise PreconditionFailed(f"cannot create {uri}: it exists") from error
    except OSError:  # no hard links here (some FUSE and SMB mounts): O_EXCL alone
        _create_exclusive(uri, path, data, settings)
    finally:
        temporary.unlink(missing_ok=True)
    return _local_etag(data)


def _create_exclusive(uri: str, path: Path, data: bytes, settings) -> None:
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError as error:
        raise PreconditionFailed(f"cannot create {uri}: it exists") from error
    except OSError as error:
        raise _explain("write", uri, error, settings) from error
    with os.fdopen(handle, "wb") as target:
        target.write(data)


def replace(uri: str, data: bytes, etag: str, settings: S3Settings | None = None) -> str:
    """Overwrite the object only if it is still the version `etag`; the new entity tag."""
    if is_s3(uri):
        return _put(uri, data, settings, IfMatch=etag)
    path = Path(resolve(uri)[1])
    with _locked(path):
        _check_local(uri, path, etag)
        temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    return _local_etag(data)


def remove(uri: str, etag: str, settings: S3Settings | None = None) -> None:
    """Delete the object only if it is still the version `etag`."""
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client(settings or S3Settings())
        current = read(uri, settings)  # stores that ignore If-Match on DELETE: checked first
        if current is None:
            return
        if current.etag != etag:
            raise PreconditionFailed(f"cannot delete {uri}: it changed since it was read")
        try:
            client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
        except Exception as error:
            raise _refusal_or(error, "delete", uri, settings) from error
        return
    path = Path(resolve(uri)[1])
    with _locked(path):
        if not path.exists():
            return
        _check_local(uri, path, etag)
        path.unlink()


def _put(uri: str, data: bytes, settings: S3Settings | None, **condition: str) -> str:
    bucket, key = _bucket_key(uri)
    client = _s3_client(settings or S3Settings())
    try:
        return client.put_object(Bucket=bucket, Key=key, Body=data, **condition)["ETag"]
    except Exception as error:
        raise _refusal_or(error, "write", uri, settings) from error


def _refusal_or(error: Exception, action: str, uri: str, settings) -> StorageError:
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
    status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    # 412: the condition failed; 409 ConditionalRequestConflict: a concurrent conditional
    # write to the same key won first (AWS); either way this writer lost
    if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
        return PreconditionFailed(f"cannot {action} {uri}: the store refused it ({code or status})")
    return _explain(action, uri, error, settings)


def _bucket_key(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _local_etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _check_local(uri: str, path: Path, etag: str) -> None:
    try:
        current = _local_etag(path.read_bytes())
    except FileNotFoundError as error:
        raise PreconditionFailed(f"cannot replace {uri}: it is gone") from error
    if current != etag:
        raise PreconditionFailed(f"cannot replace {uri}: it changed since it was read")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
