"""Reading a checkpoint from where the job says it is, as bytes with their hash.

A reference is a released model's name (`vits`, `metric-vitl`, ...: `hub.py`),
a file, a Ray Train checkpoint folder or a training run's folder, local or
s3://. Why bytes in memory rather than a path: an s3:// checkpoint has no local
path, and a job needs the hash anyway (it names the exact weights in every
output and in the plan key of split videos). A vitl checkpoint is 1.3 GB,
which an actor that loads the model holds briefly anyway.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vda.model.checkpoint import CheckpointError, is_metric_name, load_checkpoint, read_checkpoint
from vda.model.config import ModelConfig
from vda.model.network import VideoDepthAnything

from ..storage import S3Settings, StorageError, exists, join, list_files, open_input, stat
from .hub import fetch, is_release_name, released

CHECKPOINT_FILE = "checkpoint.pt"  # what `vda train` stores in each Ray Train checkpoint folder


@dataclass(frozen=True)
class Weights:
    """A checkpoint's bytes, what was asked for, what was read and its sha256."""

    uri: str  # as the job was given it: a name, a path, an s3:// URI
    data: bytes = field(repr=False)
    sha256: str
    source: str = ""  # the file read: the URI, or hf://<repo>/<file> for a released name
    license: str | None = None  # a released model's license; None: the user's own file

    @property
    def metric(self) -> bool:
        """The official release names its metric checkpoints `metric_*`."""
        return is_metric_name(self.source or self.uri)

    def stream(self) -> io.BytesIO:
        stream = io.BytesIO(self.data)
        stream.name = self.source or self.uri  # named in errors; `metric_*` marks metric depth
        return stream

    def read(self) -> Mapping[str, Any]:
        """The checkpoint's mapping (to inspect its kind before building a model)."""
        return read_checkpoint(self.stream())

    def load_model(self, config: ModelConfig | None = None, **overrides: Any) -> VideoDepthAnything:
        """The model these weights describe; an error names the checkpoint."""
        try:
            return load_checkpoint(self.stream(), config, **overrides)
        except CheckpointError as error:
            raise CheckpointError(f"checkpoint {self.uri} does not load: {error}") from None
        except Exception as error:  # a truncated or foreign file: torch's error, one line
            raise CheckpointError(
                f"checkpoint {self.uri} does not load: {type(error).__name__}: {error}"
            ) from None


def read_weights(uri: str, settings: S3Settings | None = None) -> Weights:
    """The checkpoint `uri` names: a released name through the Hub cache, else
    `checkpoint_file`; StorageError if there is none."""
    uri = str(uri)
    if is_release_name(uri):
        release = released(uri)
        data = Path(fetch(uri)).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        return Weights(uri, data, sha, source=release.source, license=release.license)
    found = checkpoint_file(uri, settings)
    with open_input(found, settings) as handle:
        data = handle.read()
    return Weights(uri, data, hashlib.sha256(data).hexdigest(), source=found)


def checkpoint_file(uri: str, settings: S3Settings | None = None) -> str:
    """The file a checkpoint reference means, local or s3://: a file as it is; a Ray Train
    checkpoint folder (as `vda train` prints it) its `checkpoint.pt`; a training run's
    folder (`<storage_path>/<name>`) the `checkpoint.pt` of its latest checkpoint."""
    if stat(uri, settings) is not None:
        return uri
    if not exists(uri, settings):
        raise StorageError(f"checkpoint {uri} does not exist")
    if stat(join(uri, CHECKPOINT_FILE), settings) is not None:
        return join(uri, CHECKPOINT_FILE)
    found = [f for f in list_files(uri, (".pt",), settings) if f.endswith("/" + CHECKPOINT_FILE)]
    if not found:
        raise StorageError(f"checkpoint {uri}: a folder with no {CHECKPOINT_FILE} under it")
    return max(found)  # Ray Train names checkpoint folders by time: the last is the latest
