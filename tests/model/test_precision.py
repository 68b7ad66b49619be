"""The one precision choice: what each setting computes in, per device and use."""

from __future__ import annotations

import pytest
import torch

from vda.model.precision import autocast_dtype, precision_used


@pytest.mark.parametrize("precision", ["auto", "fp32", "fp16", "bf16"])
@pytest.mark.parametrize("use", ["inference", "training"])
def test_off_cuda_every_setting_computes_fp32(precision, use):
    assert autocast_dtype(precision, "cpu", use) is None
    assert precision_used(precision, torch.device("cpu"), use) == "fp32"


def test_on_cuda_auto_is_fp16_for_inference_and_bf16_for_training_where_the_gpu_has_it(
    monkeypatch,
):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision_used("auto", "cuda", "inference") == "fp16"  # as the official run.py
    assert precision_used("auto", "cuda:1", "training") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision_used("auto", "cuda", "training") == "fp16"  # an older GPU: the scaler's turn
    # what is asked for by name is what runs, for both uses
    for use in ("inference", "training"):
        assert autocast_dtype("bf16", "cuda", use) is torch.bfloat16
        assert autocast_dtype("fp16", "cuda", use) is torch.float16
        assert autocast_dtype("fp32", "cuda", use) is None
