"""Object storage: s3:// and local paths behind one small interface (pyarrow filesystems)."""

from .objects import (
    S3Settings,
    StorageError,
    StoredObject,
    commit_object,
    exists,
    join,
    key_below,
    list_files,
    list_objects,
    open_input,
    open_output,
    read_bytes,
    resolve,
    stat,
    write_bytes,
)

__all__ = [
    "S3Settings",
    "StorageError",
    "StoredObject",
    "commit_object",
    "exists",
    "join",
    "key_below",
    "list_files",
    "list_objects",
    "open_input",
    "open_output",
    "read_bytes",
    "resolve",
    "stat",
    "write_bytes",
]
