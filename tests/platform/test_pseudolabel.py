"""`vda pseudolabel` against a loopback S3 bucket of images: teacher equality, failures, rerun."""

from __future__ import annotations

import io
import json
import uuid

import boto3
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import tiny_model
from videos import moving_frames

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.inference import InferenceConfig
from vda.model.strategies import predict_video
from vda.platform.data.pipeline import ClipConfig, build_clip_dataset
from vda.platform.data.shards import decode_chunk
from vda.platform.storage import list_files, read_bytes

pytestmark = pytest.mark.integration

IMAGES = {
    "a/one.png": (28, 42),
    "a/two.jpg": (42, 28),
    "b/three.webp": (28, 56),
    "four.png": (56, 42),
}


@pytest.fixture(scope="module")
def image_bucket(s3_endpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    bucket = f"images-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    decoded = {}
    for i, (name, (height, width)) in enumerate(IMAGES.items()):
        rgb = moving_frames(1, height, width, seed=i)[0]
        ok, data = cv2.imencode("." + name.rsplit(".", 1)[1], rgb[..., ::-1])
        assert ok
        s3.put_object(Bucket=bucket, Key=f"images/{name}", Body=data.tobytes())
        # what the teacher sees: the decoded file (JPEG and WebP are lossy)
        decoded[name.rsplit(".", 1)[0]] = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()
    s3.put_object(Bucket=bucket, Key="images/broken/notes.jpg", Body=b"not an image at all")
    s3.put_object(Bucket=bucket, Key="images/broken/empty.png", Body=b"")
    teacher = tiny_model(seed=51)
    save_checkpoint(teacher, folder / "teacher.ckpt")
    s3.upload_file(str(folder / "teacher.ckpt"), bucket, "models/teacher.ckpt")
    return bucket, teacher, decoded


def test_pseudolabel_writes_the_teacher_s_own_output_as_one_frame_sequences(
    image_bucket, ray_cluster, capsys
):
    bucket, teacher, decoded = image_bucket
    out = f"s3://{bucket}/pseudo"
    argv = [
        "pseudolabel",
        "--input",
        f"s3://{bucket}/images",
        "--output",
        out,
        "--teacher",
        f"s3://{bucket}/models/teacher.ckpt",
        "input_size=28",
        "images_per_shard=3",
        "actors.cpus_per_actor=0.5",
    ]
    assert main(argv) == 0
    manifest = json.loads(read_bytes(f"{out}/manifest.json"))
    assert manifest["depth_kind"] == "disparity" and manifest["chunk_frames"] == 1
    assert manifest["teacher"]["model_size"] == "tiny" and manifest["teacher"]["input_size"] == 28
    assert len(manifest["teacher"]["sha256"]) == 64
    assert manifest["totals"]["frames"] == len(IMAGES) and manifest["totals"]["failed"] == 2
    reasons = {f["image"].rsplit("/", 1)[1]: f["error"] for f in manifest["failed"]}
    assert "is empty" in reasons["empty.png"] and "not a decodable image" in reasons["notes.jpg"]

    rows = []
    for uri in list_files(f"{out}/shards", (".parquet",)):
        rows += pq.read_table(io.BytesIO(read_bytes(uri))).to_pylist()
    assert sorted(r["sequence"] for r in rows) == sorted(decoded)
    for row in rows:
        chunk = decode_chunk(row)
        rgb = decoded[row["sequence"]]
        assert chunk.rgb.shape == (1, *rgb.shape) and np.array_equal(chunk.rgb[0], rgb)
        # the teacher's own per-frame output on that image, stored as float16
        expected = predict_video(teacher, rgb[None], "per_frame", InferenceConfig(input_size=28))
        np.testing.assert_allclose(chunk.depth[0], expected[0], rtol=2**-10, atol=1e-6)

    # a rerun skips every done shard
    assert main(argv) == 0
    assert "2 shards: 2 done before, 0 to label" in capsys.readouterr().out

    # and the training pipeline reads it as T = 1 clips of disparity targets
    clips = build_clip_dataset(
        out, ClipConfig(clip_len=1, windows_per_chunk=1, batch_size=1), train=False
    ).take_all()
    assert len(clips) == len(IMAGES)
    for clip in clips:
        assert clip["target"].shape[0] == 1 and np.allclose(clip["target"], clip["depth"])
