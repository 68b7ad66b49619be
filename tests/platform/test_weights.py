"""Weights by reference: one reader for local paths and s3:// URIs, one hash, one error."""

from __future__ import annotations

import hashlib

import boto3
import pytest
import torch
from helpers import tiny_model

from vda.model import save_checkpoint
from vda.model.checkpoint import CheckpointError
from vda.platform.storage import StorageError
from vda.platform.weights import read_weights

pytestmark = pytest.mark.integration  # the loopback S3 server


def test_a_local_file_and_its_s3_copy_are_the_same_weights(tmp_path, bucket, s3_endpoint):
    model = tiny_model(seed=5)
    path = tmp_path / "metric_tiny.ckpt"
    save_checkpoint(model, path)
    boto3.client("s3", endpoint_url=s3_endpoint).upload_file(str(path), bucket, "m/tiny.ckpt")
    local = read_weights(str(path))
    remote = read_weights(f"s3://{bucket}/m/tiny.ckpt")
    assert local.sha256 == remote.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert local.metric and not remote.metric  # the official `metric_` name marks metric depth
    loaded = remote.load_model()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    assert local.load_model().config.metric and not loaded.config.metric


def test_missing_or_broken_weights_are_one_line_naming_the_checkpoint(tmp_path, bucket):
    with pytest.raises(StorageError, match=f"checkpoint s3://{bucket}/none.pth does not exist"):
        read_weights(f"s3://{bucket}/none.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"checkpoint {broken} does not load: ") as caught:
        read_weights(str(broken)).load_model()
    assert "\n" not in str(caught.value)
