"""Resolve `s3://bucket/key`, `file://...` and plain paths to a pyarrow filesystem and path.

S3 settings come from the standard AWS environment (`AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL`, `AWS_REGION` / `AWS_DEFAULT_REGION`, keys, `AWS_PROFILE`)
or from `S3Settings` in a job's config; credentials are only ever read by the
AWS SDK from the environment or a profile, never taken into configs, so they
cannot reach logs or MLflow params. The bare `pyarrow.fs.S3FileSystem()`
ignores `AWS_ENDPOINT_URL*` (unlike `FileSystem.from_uri`), so the endpoint is passed explicitly.

Failures become one `StorageError` that says what was asked of which URI
(unreachable endpoint, missing bucket, denied access, missing key), with any
secret found in the environment scrubbed from the message.
"""

from __future__ import annotations

import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

T = TypeVar("T")
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


class StorageError(RuntimeError):
    """An object-storage operation that failed: one readable message, no secrets."""


def is_missing(error: StorageError) -> bool:
    """The error says the object is not there (as opposed to denied, throttled, unreachable)."""
    return "does not exist" in str(error)


def retrying(
    call: Callable[[], T],
    what: str,
    attempts: int = 4,
    first_pause_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried on a StorageError with doubling pauses (0.5, 1, 2 s by default).

    Beyond the SDK's own per-request retries: for a caller that polls storage
    (a stitch waiting for its segments) and must neither give up on one blip
    nor wait forever on a lasting 403 or throttling. The last error is raised
    with `what` in front of its first line.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except StorageError as error:
            if attempt == attempts:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise StorageError(f"{what}: {first} ({attempts} attempts)") from error
            sleep(first_pause_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class S3Settings:
    """Non-secret S3 settings a config may carry; unset fields fall back to the environment."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 60.0
    max_attempts: int = 3


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', normalising each part so no part can climb out of `base`.

    Parts come from file names in listings and user input: `..`, absolute
    paths and empty segments are refused rather than resolved.
    """
    clean = []
    for part in parts:
        for segment in str(part).replace("\\", "/").split("/"):
            if segment in ("", "."):
                continue
            if segment == "..":
                raise StorageError(f"refusing a storage key that climbs out of {base!r}: {part!r}")
            clean.append(segment)
    return "/".join([str(base).rstrip("/"), *clean])


def key_below(uri: str, prefix: str | None) -> str:
    """A normalised key naming `uri` below `prefix` (bucket-qualified when it is not below
    it), without its suffix: the output name of an input file (videos, images)."""
    text = uri
    if prefix and uri.startswith(prefix.rstrip("/") + "/"):
        text = uri[len(prefix.rstrip("/")) + 1 :]
    elif "://" in text:
        text = text.split("://", 1)[1]
    return join("", posixpath.splitext(text)[0]).lstrip("/")


def _scrub(message: str) -> str:
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            message = message.replace(value, "***")
    return message


def _endpoint(settings: S3Settings) -> str | None:
    return (
        settings.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


@lru_cache(maxsize=16)
def _s3_filesystem(settings: S3Settings) -> pafs.S3FileSystem:
    kwargs: dict = {
        "region": settings.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        "connect_timeout": settings.connect_timeout_s,
        "request_timeout": settings.request_timeout_s,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=settings.max_attempts),
    }
    endpoint = _endpoint(settings)
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme or "https"
    if settings.profile:
        # pyarrow has no profile argument: resolve the named profile with boto3
        # and hand over the credentials in memory (AWS_PROFILE from the
        # environment is honoured by the AWS SDK itself).
        import boto3

        credentials = boto3.Session(profile_name=settings.profile).get_credentials()
        if credentials is None:
            raise StorageError(f"AWS profile {settings.profile!r} has no credentials")
        frozen = credentials.get_frozen_credentials()
        kwargs.update(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            session_token=frozen.token,
        )
    return pafs.S3FileSystem(**kwargs)


def resolve(uri: str | Path, settings: S3Settings | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for an s3:// URI, a file:// URI or a local path."""
    text = str(uri)
    if is_s3(text):
        parsed = urlparse(text)
        if not parsed.netloc:
            raise StorageError(f"{text!r} names no bucket")
        return _s3_filesystem(settings or S3Settings()), f"{parsed.netloc}{parsed.path}".rstrip("/")
    if text.startswith("file://"):
        text = urlparse(text).path
    return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())


def _to_uri(uri: str, path: str) -> str:
    return f"s3://{path}" if is_s3(uri) else path


def _explain(action: str, uri: str, error: Exception, settings: S3Settings | None) -> StorageError:
    text = str(error)
    lowered = text.lower()
    if is_s3(uri):
        endpoint = _endpoint(settings or S3Settings()) or "the default AWS endpoint"
        bucket = urlparse(uri).netloc
        if (
            "curlcode: 7" in lowered
            or "couldn't connect" in lowered
            or "could not connect" in lowered
            or "connection refused" in lowered
        ):
            reason = f"cannot reach the S3 endpoint {endpoint}"
        elif "nosuchbucket" in lowered or "bucket does not exist" in lowered:
            reason = f"bucket {bucket!r} does not exist at {endpoint}"
        elif "accessdenied" in lowered or "access denied" in lowered or "forbidden" in lowered:
            reason = f"access denied to {uri} (check the credentials and the bucket policy)"
        elif "invalidaccesskeyid" in lowered or "signaturedoesnotmatch" in lowered:
            reason = "the S3 credentials were rejected"
        elif (
            isinstance(error, FileNotFoundError) or "not found" in lowered or "nosuchkey" in lowered
        ):
            reason = f"{uri} does not exist"
        else:
            reason = text
    else:
        reason = f"{uri} does not exist" if isinstance(error, FileNotFoundError) else text
    return StorageError(_scrub(f"cannot {action} {uri}: {reason}"))


def _check_bucket(uri: str, fs: pafs.FileSystem, settings: S3Settings | None) -> None:
    """Fail fast and clearly on a missing bucket (a listing of one would just be empty)."""
    if not is_s3(uri):
        return
    bucket = urlparse(uri).netloc
    try:
        info = fs.get_file_info(bucket)
    except OSError as error:
        raise _explain("reach", uri, error, settings) from error
    if info.type == pafs.FileType.NotFound:
        endpoint = _endpoint(settings or S3Settings()) or "the default AWS endpoint"
        raise StorageError(f"bucket {bucket!r} does not exist at {endpoint}")


def exists(uri: str, settings: S3Settings | None = None) -> bool:
    fs, path = resolve(uri, settings)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as error:
        raise _explain("check", uri, error, settings) from error


def list_files(
    prefix: str, suffixes: tuple[str, ...] | None = None, settings: S3Settings | None = None
) -> list[str]:
    """Every file under `prefix` (recursive), as URIs of the same kind, sorted."""
    fs, path = resolve(prefix, settings)
    _check_bucket(prefix, fs, settings)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError as error:
        raise _explain("list", prefix, error, settings) from error
    files = [
        _to_uri(prefix, info.path)
        for info in infos
        if info.type == pafs.FileType.File
        and (suffixes is None or info.path.lower().endswith(tuple(s.lower() for s in suffixes)))
    ]
    return sorted(files)


@dataclass(frozen=True)
class StoredObject:
    """One listed object: what a plan needs without reading it."""

    uri: str
    size: int
    mtime: float  # seconds since the epoch, as the store reports it (S3: whole seconds)


def stat(uri: str, settings: S3Settings | None = None) -> StoredObject | None:
    """One object's size and time (a HEAD on S3), or None when there is no such object."""
    fs, path = resolve(uri, settings)
    try:
        info = fs.get_file_info(path)
    except OSError as error:
        raise _explain("check", uri, error, settings) from error
    if info.type != pafs.FileType.File:
        return None
    return StoredObject(uri, info.size, info.mtime.timestamp())


def list_objects(
    prefix: str, suffixes: tuple[str, ...] | None = None, settings: S3Settings | None = None
) -> Iterator[StoredObject]:
    """Every object under `prefix` (recursive) with its size and time, in key order.

    On S3 this is ListObjectsV2 without a delimiter, 1,000 keys a request, so
    listing N objects costs ceil(N / 1000) requests however deep the folders
    are (pyarrow's recursive listing walks folder by folder). A generator: a
    million keys never sit in one list here.
    """
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    if not is_s3(prefix):
        fs, path = resolve(prefix, settings)
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        infos = sorted(fs.get_file_info(selector), key=lambda info: info.path)
        # special files (a named pipe, a device) are listed too: an input that cannot be read
        # is a failed video with its reason, not one silently left out of the job
        kinds = (pafs.FileType.File, pafs.FileType.Unknown)
        for info in infos:
            if info.type in kinds and (wanted is None or info.path.lower().endswith(wanted)):
                mtime = info.mtime.timestamp() if info.mtime else 0.0
                yield StoredObject(info.path, info.size or 0, mtime)
        return
    parsed = urlparse(prefix)
    key = parsed.path.lstrip("/").rstrip("/")
    pages = _s3_client(settings or S3Settings()).get_paginator("list_objects_v2")
    try:
        for page in pages.paginate(Bucket=parsed.netloc, Prefix=f"{key}/" if key else ""):
            for item in page.get("Contents", []):
                if wanted is None or item["Key"].lower().endswith(wanted):
                    uri = f"s3://{parsed.netloc}/{item['Key']}"
                    yield StoredObject(uri, item["Size"], item["LastModified"].timestamp())
    except Exception as error:  # botocore's errors: one readable line, like pyarrow's
        raise _explain("list", prefix, error, settings) from error


@lru_cache(maxsize=16)
def _s3_client(settings: S3Settings):
    """A boto3 client with the same endpoint, region, profile and limits as the filesystem."""
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=settings.profile) if settings.profile else boto3.Session()
    return session.client(
        "s3",
        endpoint_url=_endpoint(settings),
        region_name=settings.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        config=Config(
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.request_timeout_s,
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        ),
    )


def open_input(uri: str, settings: S3Settings | None = None) -> IO[bytes]:
    """A seekable binary stream (ranged GETs on S3: nothing is downloaded up front)."""
    fs, path = resolve(uri, settings)
    try:
        return fs.open_input_file(path)
    except (OSError, FileNotFoundError) as error:
        raise _explain("read", uri, error, settings) from error


def open_output(uri: str, settings: S3Settings | None = None) -> IO[bytes]:
    """A streaming writer (multipart upload on S3); the object appears when it is closed."""
    fs, path = resolve(uri, settings)
    _check_bucket(uri, fs, settings)
    try:
        if not is_s3(uri):
            fs.create_dir(posixpath.dirname(path), recursive=True)
        return fs.open_output_stream(path)
    except OSError as error:
        raise _explain("write", uri, error, settings) from error


def read_bytes(uri: str, settings: S3Settings | None = None) -> bytes:
    with open_input(uri, settings) as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes, settings: S3Settings | None = None) -> None:
    """Write an object so that readers see either nothing or all of it.

    Local files go to a temporary name and are renamed; on S3 a PUT is
    already atomic.
    """
    if is_s3(uri):
        with open_output(uri, settings) as handle:
            handle.write(data)
        return
    temporary = f"{uri}.tmp-{uuid.uuid4().hex[:8]}"
    with open_output(temporary, settings) as handle:
        handle.write(data)
    commit_object(temporary, uri, settings)


def commit_object(temporary: str, final: str, settings: S3Settings | None = None) -> None:
    """Move a finished object to its final key (rename locally; server-side copy on S3)."""
    fs, source = resolve(temporary, settings)
    _, target = resolve(final, settings)
    try:
        if not is_s3(final):
            fs.create_dir(posixpath.dirname(target), recursive=True)
        fs.move(source, target)
    except OSError as error:
        raise _explain("commit", final, error, settings) from error


def delete(uri: str, settings: S3Settings | None = None) -> None:
    fs, path = resolve(uri, settings)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            fs.delete_file(path)
    except OSError as error:
        raise _explain("delete", uri, error, settings) from error
