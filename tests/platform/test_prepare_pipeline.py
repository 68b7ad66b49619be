"""`vda prepare` into S3 over loopback HTTP, and the Ray Data pipeline reading it back."""

from __future__ import annotations

import json

import boto3
import cv2
import numpy as np
import pytest

from vda.jobs.cli import main
from vda.platform.data.layouts import png16_sequences
from vda.platform.data.pipeline import (
    AugmentConfig,
    ClipConfig,
    build_clip_dataset,
    read_manifest,
    sample_clips,
    to_model_inputs,
)
from vda.platform.data.shards import decode_chunk
from vda.platform.storage import list_files

pytestmark = pytest.mark.integration


def _png16_source(root, sequences=2, frames=6, broken=False):
    rng = np.random.default_rng(0)
    for s in range(sequences):
        seq = root / f"seq{s}"
        (seq / "rgb").mkdir(parents=True)
        (seq / "depth").mkdir()
        for i in range(frames):
            cv2.imwrite(
                str(seq / "rgb" / f"{i:04d}.png"), rng.integers(0, 256, (14, 28, 3), dtype=np.uint8)
            )
            depth = rng.integers(1, 5000, (14, 28), dtype=np.uint16)
            cv2.imwrite(str(seq / "depth" / f"{i:04d}.png"), depth)
    if broken:
        seq = root / "seq_broken"
        (seq / "rgb").mkdir(parents=True)
        (seq / "depth").mkdir()
        cv2.imwrite(str(seq / "rgb" / "0000.png"), np.zeros((14, 28, 3), np.uint8))
    return root


def _last_modified(bucket, prefix):
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["LastModified"] for o in listing.get("Contents", [])}


def test_prepare_two_layouts_into_s3_and_read_back_with_ray_data(tmp_path, bucket, ray_cluster):
    src = _png16_source(tmp_path / "raw", broken=True)
    dst = f"s3://{bucket}/datasets/scannet_like"
    code = main(
        [
            "prepare",
            "--layout",
            "png16",
            "--src",
            str(src),
            "--dst",
            dst,
            "depth_scale=0.001",
            "chunk_frames=4",
            "dataset=scannet_like",
        ]
    )
    assert code == 1  # one sequence failed, the others converted
    manifest = read_manifest(dst)
    assert manifest["totals"] == {"sequences": 2, "frames": 12, "chunks": 4, "failed": 1}
    assert manifest["failed"][0]["sequence"] == "seq_broken"
    assert "has no depth file" in manifest["failed"][0]["error"]
    assert manifest["resolutions"] == ["14x28"]

    # frames bit-exact, depth within float16 precision, read back over HTTP
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs = pafs.FileSystem.from_uri(dst)[0]
    shard = f"{bucket}/datasets/scannet_like/{manifest['sequences'][0]['shards'][0]}"
    rows = pq.read_table(shard, filesystem=fs).to_pylist()
    chunk = decode_chunk(rows[0])
    source = list(png16_sequences(str(src), 0.001)[0].frames())
    np.testing.assert_array_equal(chunk.rgb, np.stack([f.rgb for f in source[:4]]))
    np.testing.assert_allclose(chunk.depth, np.stack([f.depth for f in source[:4]]), rtol=2**-11)

    synthetic_dst = f"s3://{bucket}/datasets/synthetic"
    assert (
        main(
            [
                "prepare",
                "--layout",
                "synthetic",
                "--dst",
                synthetic_dst,
                "synthetic.sequences=2",
                "synthetic.frames=10",
                "synthetic.height=28",
                "synthetic.width=42",
                "chunk_frames=5",
            ]
        )
        == 0
    )
    synthetic = read_manifest(synthetic_dst)
    assert synthetic["totals"]["frames"] == 20 and synthetic["max_depth"] > 20
    assert all(s["has_poses"] and s["has_intrinsics"] for s in synthetic["sequences"])

    config = ClipConfig(
        clip_len=4, batch_size=2, windows_per_chunk=1, augment=AugmentConfig(height=14, width=28)
    )
    ds = build_clip_dataset(synthetic_dst, config, epoch=0)
    batches = list(ds.iter_torch_batches(batch_size=2))
    assert sum(b["frames"].shape[0] for b in batches) == 4  # 4 chunks, 1 window each
    batch = batches[0]
    assert tuple(batch["frames"].shape[1:]) == (4, 14, 28, 3)
    assert tuple(batch["target"].shape[1:]) == (4, 14, 28)
    assert batch["has_pose"].all()
    inputs = to_model_inputs(batch)
    assert tuple(inputs["frames"].shape[1:]) == (4, 3, 14, 28)
    assert inputs["frames"].dtype.is_floating_point

    # a rerun rewrites nothing that is complete
    before = _last_modified(bucket, "datasets/synthetic/shards/")
    assert (
        main(
            [
                "prepare",
                "--layout",
                "synthetic",
                "--dst",
                synthetic_dst,
                "synthetic.sequences=2",
                "synthetic.frames=10",
                "synthetic.height=28",
                "synthetic.width=42",
                "chunk_frames=5",
            ]
        )
        == 0
    )
    assert _last_modified(bucket, "datasets/synthetic/shards/") == before


def test_prepare_and_pipeline_with_local_paths(tmp_path, ray_cluster):
    dst = tmp_path / "prepared"
    assert (
        main(
            [
                "prepare",
                "--dst",
                str(dst),
                "synthetic.sequences=1",
                "synthetic.frames=8",
                "synthetic.height=14",
                "synthetic.width=28",
                "chunk_frames=8",
            ]
        )
        == 0
    )
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["totals"]["frames"] == 8
    assert list_files(str(dst / "shards")) == [
        str(dst / "shards" / "synthetic_0_0000-0000.parquet")
    ]
    config = ClipConfig(clip_len=8, windows_per_chunk=1, augment=AugmentConfig(height=14, width=28))
    rows = build_clip_dataset(str(dst), config, train=False).take_all()
    assert len(rows) == 1 and rows[0]["frames"].shape == (8, 14, 28, 3)


def test_epochs_change_the_sampled_clips_and_fixed_epochs_repeat(tmp_path):
    from vda.platform.data.shards import FrameRecord, encode_chunk
    from vda.platform.data.synthetic import SyntheticConfig, SyntheticScene

    scene = SyntheticScene(SyntheticConfig(frames=12, height=28, width=42), 0)
    records = [FrameRecord(f.rgb, f.depth, f.valid, f.intrinsics, f.c2w) for f in scene.frames()]
    row = encode_chunk(records, 0, dataset="d", sequence="s", split="train", chunk=0)
    config = ClipConfig(
        clip_len=4, windows_per_chunk=1, augment=AugmentConfig(height=14, width=14, max_scale=2)
    )
    same = [sample_clips(row, config, epoch=3)[0] for _ in range(2)]
    assert np.array_equal(same[0]["frames"], same[1]["frames"])
    epochs = {sample_clips(row, config, epoch=e)[0]["frames"].tobytes() for e in range(5)}
    assert len(epochs) > 1
    fresh = {sample_clips(row, config)[0]["frames"].tobytes() for _ in range(5)}
    assert len(fresh) > 1
    assert sample_clips(row, ClipConfig(clip_len=13)) == []  # chunk too short: skipped
