"""Released weights by name, through the Hub's download protocol on loopback, then offline."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
import torch
from helpers import tiny_model
from hub_server import HubServer

from vda.model.checkpoint import official_state_dict
from vda.platform.storage import StorageError
from vda.platform.weights import read_weights
from vda.platform.weights.hub import RELEASED, published_sha256

pytestmark = pytest.mark.integration  # an HTTP server on loopback


def _official_bytes(seed: int, **overrides) -> bytes:
    buffer = io.BytesIO()
    torch.save(official_state_dict(tiny_model(seed=seed, **overrides)), buffer)
    return buffer.getvalue()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.delenv("HF_HUB_CACHE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def test_a_name_downloads_once_into_the_cache_and_then_works_offline(hub, monkeypatch):
    small, metric = RELEASED["vits"], RELEASED["metric-vits"]
    hub.files[(small.repo_id, small.filename)] = data = _official_bytes(1)
    hub.files[(metric.repo_id, metric.filename)] = _official_bytes(2, metric=True)

    # the driver's view first: the hash from the Hub's answer alone, nothing downloaded
    assert published_sha256("vits") == hashlib.sha256(data).hexdigest() and hub.downloads() == 0
    first = read_weights("vits")
    assert first.sha256 == hashlib.sha256(data).hexdigest() == published_sha256("vits")
    assert first.license == "Apache-2.0" and first.uri == "vits"
    assert first.source == f"hf://{small.repo_id}/{small.filename}"
    model = first.load_model()
    assert model.config.size == "tiny" and not model.config.metric
    assert read_weights("metric-vits").load_model().config.metric  # the release's metric file
    assert hub.downloads() == 2

    again = read_weights("vits")  # the cache answers; a HEAD may check it, nothing is fetched
    assert again.sha256 == first.sha256 and hub.downloads() == 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    assert read_weights("vits").sha256 == first.sha256 == published_sha256("vits")
    assert len(hub.requests) == before  # offline: not one request


def test_unknown_names_missing_cache_and_refusals_are_one_line(hub, monkeypatch):
    with pytest.raises(StorageError, match="the released models are vits, vitb, vitl, metric-vits"):
        read_weights("vitx")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline_line = "HF_HUB_OFFLINE is set and video_depth_anything_vitb.pth is not in the Hugging"
    with pytest.raises(StorageError, match=re.escape(offline_line)) as offline:
        read_weights("vitb")
    assert "\n" not in str(offline.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(
        StorageError, match="checkpoint vitl: "
    ) as refused:  # the server has no vitl
        read_weights("vitl")
    assert "\n" not in str(refused.value)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(StorageError, match="the Hub cannot be reached"):
        read_weights("vits")
