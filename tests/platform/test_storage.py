"""Object storage against local folders and a real S3 server on loopback."""

from __future__ import annotations

import time

import pytest
from helpers import free_port

from vda.platform.storage import (
    S3Settings,
    StorageError,
    commit_object,
    exists,
    join,
    list_files,
    open_input,
    read_bytes,
    write_bytes,
)
from vda.platform.storage.objects import delete


def _roundtrip(root: str) -> None:
    write_bytes(join(root, "a/one.bin"), b"1" * 10)
    write_bytes(join(root, "a/b/two.mp4"), b"22")
    write_bytes(join(root, "three.MP4"), b"333")
    assert read_bytes(join(root, "a/b/two.mp4")) == b"22"
    assert exists(join(root, "a/one.bin")) and not exists(join(root, "a/missing"))
    assert list_files(root) == [join(root, p) for p in ("a/b/two.mp4", "a/one.bin", "three.MP4")]
    assert list_files(root, (".mp4",)) == [join(root, "a/b/two.mp4"), join(root, "three.MP4")]
    with open_input(join(root, "a/one.bin")) as handle:
        handle.seek(4)
        assert handle.read(3) == b"111"
    write_bytes(join(root, "_tmp/x"), b"payload")
    commit_object(join(root, "_tmp/x"), join(root, "final/x"))
    assert read_bytes(join(root, "final/x")) == b"payload" and not exists(join(root, "_tmp/x"))
    delete(join(root, "final/x"))
    assert not exists(join(root, "final/x"))


def test_local_folders(tmp_path):
    _roundtrip(str(tmp_path / "store"))


def test_file_uris_are_local_paths(tmp_path):
    write_bytes(str(tmp_path / "f.txt"), b"x")
    assert read_bytes(f"file://{tmp_path}/f.txt") == b"x"


@pytest.mark.integration  # the loopback S3 server
def test_s3_over_loopback_http(bucket):
    _roundtrip(f"s3://{bucket}/prefix")


@pytest.mark.integration  # the loopback S3 server
def test_missing_key_is_a_clear_error(bucket, tmp_path):
    with pytest.raises(StorageError, match=rf"s3://{bucket}/nope.bin does not exist"):
        read_bytes(f"s3://{bucket}/nope.bin")
    with pytest.raises(StorageError, match="does not exist"):
        read_bytes(str(tmp_path / "nope.bin"))


@pytest.mark.integration  # the loopback S3 server
def test_missing_bucket_fails_fast_with_its_name(s3_endpoint):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        list_files("s3://no-such-bucket/videos/")


@pytest.mark.integration  # the loopback S3 server
def test_unreachable_endpoint_fails_fast_without_secrets(s3_endpoint):
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout_s=1, max_attempts=1
    )
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        list_files("s3://bucket/videos/", settings=settings)
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert "cannot reach the S3 endpoint http://127.0.0.1:" in message
    assert "testing-secret-value" not in message and "testing-key-id" not in message


@pytest.mark.parametrize("bad", ["../escape", "a/../../b", "x/.."])
def test_keys_cannot_climb_out_of_their_prefix(bad):
    with pytest.raises(StorageError, match="climbs out"):
        join("s3://bucket/out", bad)
    assert join("s3://bucket/out/", "./a//b/", "c") == "s3://bucket/out/a/b/c"
