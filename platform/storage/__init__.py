"""Object storage: s3:// and local paths behind one small interface (pyarrow filesystems)."""

from .objects import (
    S3Settings,
    StorageError,
    commit_object,
    exists,
    join,
    key_below,
    list_files,
    open_input,
    open_output,
    read_bytes,
    resolve,
    write_bytes,
)

__all__ = [
    "S3Settings",
    "StorageError",
    "commit_object",
    "exists",
    "join",
    "key_below",
    "list_files",
    "open_input",
    "open_output",
    "read_bytes",
    "resolve",
    "write_bytes",
]
