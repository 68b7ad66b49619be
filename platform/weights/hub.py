"""The released weights by name (`vits`, `metric-vitl`, ...), fetched once into the Hub cache.

The names, repositories and file names are the official release's (its README's
model table and `get_weights.sh`); so are the licenses (its README's LICENSE
section: the Small models are Apache-2.0, Base and Large CC-BY-NC-4.0, which
forbids commercial use). A job names the license before it starts, so a user
sees it before a bulk job, not after.

Resolution is `huggingface_hub.hf_hub_download` into its standard cache
(`HF_HOME`, default `~/.cache/huggingface`; a shared cache is `HF_HUB_CACHE` on
a shared disk): the second run and every offline run (`HF_HUB_OFFLINE=1`) read
the cache. `HF_ENDPOINT` (a mirror) and `HF_TOKEN` are honoured; both are read
when a name is resolved, not when the module is imported. On a cluster each
node resolves a name from its own cache: the driver only checks that the name
is known and prints its license; the bytes never pass through it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..storage import StorageError


@dataclass(frozen=True)
class ReleasedWeights:
    name: str
    repo_id: str
    filename: str
    license: str

    @property
    def source(self) -> str:
        """Where the file comes from, as outputs record it."""
        return f"hf://{self.repo_id}/{self.filename}"

    @property
    def terms(self) -> str:
        """The license as a user must read it before running a job."""
        if self.license == _NC:
            return f"{self.license}: non-commercial use only"
        return self.license


_ORG = "depth-anything"
_APACHE, _NC = "Apache-2.0", "CC-BY-NC-4.0"
RELEASED: dict[str, ReleasedWeights] = {
    weights.name: weights
    for weights in (
        ReleasedWeights(
            "vits", f"{_ORG}/Video-Depth-Anything-Small", "video_depth_anything_vits.pth", _APACHE
        ),
        ReleasedWeights(
            "vitb", f"{_ORG}/Video-Depth-Anything-Base", "video_depth_anything_vitb.pth", _NC
        ),
        ReleasedWeights(
            "vitl", f"{_ORG}/Video-Depth-Anything-Large", "video_depth_anything_vitl.pth", _NC
        ),
        ReleasedWeights(
            "metric-vits",
            f"{_ORG}/Metric-Video-Depth-Anything-Small",
            "metric_video_depth_anything_vits.pth",
            _APACHE,
        ),
        ReleasedWeights(
            "metric-vitb",
            f"{_ORG}/Metric-Video-Depth-Anything-Base",
            "metric_video_depth_anything_vitb.pth",
            _NC,
        ),
        ReleasedWeights(
            "metric-vitl",
            f"{_ORG}/Metric-Video-Depth-Anything-Large",
            "metric_video_depth_anything_vitl.pth",
            _NC,
        ),
    )
}


def is_release_name(reference: str) -> bool:
    """A bare word (no path separator, suffix or scheme) that is not a local path: a release
    name, known or not."""
    text = str(reference)
    if any(mark in text for mark in "/\\.:") or not text:
        return False
    return not Path(text).exists()


def released(name: str) -> ReleasedWeights:
    """The release a name stands for; an unknown name lists the known ones."""
    try:
        return RELEASED[name]
    except KeyError:
        raise StorageError(
            f"checkpoint {name!r} is not a path, an s3:// URI or a released model; "
            f"the released models are {', '.join(RELEASED)}"
        ) from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def fetch(name: str) -> str:
    """The local path of a released checkpoint, downloaded into the Hub cache when missing."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    weights = released(name)
    offline = _offline()
    try:
        return hf_hub_download(
            weights.repo_id,
            weights.filename,
            cache_dir=_cache_dir(),
            endpoint=_endpoint(),
            local_files_only=offline,
        )
    except LocalEntryNotFoundError:
        raise _not_cached(weights, offline) from None
    except Exception as error:  # the Hub answered with an error (404, 401, ...)
        raise StorageError(
            f"checkpoint {name}: the Hub refused {weights.filename}: {_first_line(error)}"
        ) from None


def published_sha256(name: str) -> str:
    """The sha256 of a released file without downloading it (what a driver records before
    the actors fetch it on their nodes): the cached copy's, else the Hub's ETag for it (the
    Hub's ETag of a large, LFS-stored file is its sha256)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    from vda.model.checkpoint import file_sha256

    weights = released(name)
    cached = try_to_load_from_cache(weights.repo_id, weights.filename, cache_dir=_cache_dir())
    if isinstance(cached, str):
        return file_sha256(cached)
    if _offline():
        raise _not_cached(weights, True)
    url = hf_hub_url(weights.repo_id, weights.filename, endpoint=_endpoint())
    try:
        etag = get_hf_file_metadata(url, endpoint=_endpoint()).etag
    except Exception as error:
        raise StorageError(
            f"checkpoint {name}: the Hub cannot be reached: {_first_line(error)}"
        ) from None
    if not etag or len(etag) != 64:
        raise StorageError(f"checkpoint {name}: the Hub gave no sha256 for {weights.filename}")
    return etag


def _not_cached(weights: ReleasedWeights, offline: bool) -> StorageError:
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
    return StorageError(
        f"checkpoint {weights.name}: {why} and {weights.filename} is not in the Hugging Face "
        f"cache ({_cache_dir()}); run once with network access, or download it from "
        f"https://huggingface.co/{weights.repo_id} and pass its path"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _cache_dir() -> str:
    """Read when used, not at import (huggingface_hub reads its variables once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(home, "hub")
