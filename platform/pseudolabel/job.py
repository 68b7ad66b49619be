"""`vda pseudolabel`: label unlabeled images with a teacher, as the paper's training mix needs.

Video Depth Anything trains its head on labelled video clips *and* on
unlabeled images that a teacher labels (Depth Anything V2's recipe). This job
writes those labels in the clip-shard format `vda prepare` writes, so the
training pipeline reads them like any data set: every image is a sequence of
one frame (T = 1), depth kind `disparity` (relative, what the teacher
predicts), and the manifest names the teacher (checkpoint sha256, model size,
input size).

A Ray Data batch job: images are grouped into shards of `images_per_shard`
in listing order; an actor pool (one teacher load per actor, a GPU when the
config asks for one) labels one shard per call and writes its Parquet file;
`_done/shard-NNNNN.json` marks it done with the images it holds, so a rerun
skips every shard whose images are unchanged. An image that does not decode
is a failed row with its reason; the rest of its shard is written.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..core.config import build, to_dict
from ..core.progress import JobProgress
from ..core.session import start_ray
from ..data.shards import FORMAT_VERSION, SCHEMA, FrameRecord, encode_chunk, rows_to_table
from ..storage import (
    StorageError,
    join,
    key_below,
    list_files,
    open_output,
    read_bytes,
    write_bytes,
)
from ..weights import read_weights
from .config import PseudoLabelConfig


def list_images(config: PseudoLabelConfig) -> list[str]:
    if config.input.endswith(".txt"):
        lines = read_bytes(config.input, config.s3).decode().splitlines()
        return [u.strip() for u in lines if u.strip() and not u.startswith("#")]
    return list_files(config.input, tuple(config.suffixes), config.s3)


def shard_marker(config: PseudoLabelConfig, shard: int) -> str:
    return join(config.output, "_done", f"shard-{shard:05d}.json")


def decode_image(data: bytes, name: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from encoded bytes (JPEG, PNG, WebP; EXIF orientation applied)."""
    import cv2

    if not data:
        raise ValueError(f"{name} is empty")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{name} is not a decodable image")
    return np.ascontiguousarray(image[..., ::-1])


class TeacherLabeler:
    """Ray Data callable class: one shard (a list of image URIs) in, its summary out."""

    def __init__(self, config: dict[str, Any], teacher_sha256: str) -> None:
        import torch

        from vda.model.inference import InferenceConfig
        from vda.model.precision import pick_device, precision_used

        self.config = build(PseudoLabelConfig, config)
        actors = self.config.actors
        torch.set_num_threads(actors.torch_threads or max(1, math.ceil(actors.cpus_per_actor)))
        self.model = read_weights(self.config.teacher, self.config.s3).load_model().eval()
        self.device = torch.device(pick_device(gpu=actors.gpus_per_actor > 0))
        self.model.to(self.device)
        self.inference = InferenceConfig(
            input_size=self.config.input_size, precision=self.config.precision
        )
        self.precision = precision_used(self.config.precision, self.device)
        self.sha = teacher_sha256

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [
            self.label_shard(
                int(batch["shard"][i]),
                [str(u) for u in batch["images"][i]],
                [str(n) for n in batch["names"][i]],
            )
            for i in range(len(batch["shard"]))
        ]
        return {"summary": [json.dumps(row) for row in rows]}

    def label_shard(self, shard: int, images: list[str], names: list[str]) -> dict[str, Any]:
        from vda.model.strategies import predict_window

        config = self.config
        start = time.perf_counter()
        rows, failed, sizes = [], [], set()
        for uri, name in zip(images, names):
            try:
                rgb = decode_image(read_bytes(uri, config.s3), uri)
                disparity = predict_window(self.model, rgb[None], self.inference, self.device)
                disparity = disparity[0].numpy().astype(np.float32)
                record = FrameRecord(rgb=rgb, depth=disparity, valid=np.isfinite(disparity))
                rows.append(
                    encode_chunk(
                        [record],
                        0,
                        dataset=config.dataset,
                        sequence=name,
                        split="train",
                        chunk=0,
                        frame_format=config.frame_format,
                        depth_encoding="f16",
                    )
                )
                sizes.add(f"{rgb.shape[0]}x{rgb.shape[1]}")
            except (StorageError, ValueError) as error:
                failed.append({"image": uri, "error": str(error)})
        relative = f"shards/shard-{shard:05d}.parquet"
        if rows:
            with open_output(join(config.output, relative), config.s3) as handle:
                pq.write_table(rows_to_table(rows), handle, compression="zstd")
        summary = {
            "sequence": f"shard-{shard:05d}",
            "images": images,
            "frames": len(rows),
            "chunks": len(rows),
            "shards": [relative] if rows else [],
            "resolutions": sorted(sizes),
            "failed": failed,
            "precision": self.precision,
            "seconds": round(time.perf_counter() - start, 3),
        }
        write_bytes(shard_marker(config, shard), json.dumps(summary).encode(), config.s3)
        return summary


def run_pseudolabel(config: PseudoLabelConfig, progress=print) -> dict[str, Any]:
    """Label every image not labelled yet; write and return the manifest."""
    import ray

    images = list_images(config)
    if not images:
        raise StorageError(f"no images ({', '.join(config.suffixes)}) under {config.input}")
    weights = read_weights(config.teacher, config.s3)
    teacher = weights.load_model()  # loads on the driver, or fails here
    sha = weights.sha256
    prefix = None if config.input.endswith(".txt") else config.input
    names = [key_below(uri, prefix) for uri in images]
    if len(set(names)) != len(names):
        raise StorageError("two images map to the same sequence name; rename one")
    size = config.images_per_shard
    groups = [
        {
            "shard": i,
            "images": images[i * size : (i + 1) * size],
            "names": names[i * size : (i + 1) * size],
        }
        for i in range(math.ceil(len(images) / size))
    ]
    summaries: dict[int, dict[str, Any]] = {}
    for group in groups:  # a shard is done when its marker lists exactly its images
        try:
            marker = json.loads(read_bytes(shard_marker(config, group["shard"]), config.s3))
        except (StorageError, ValueError):
            continue
        if marker.get("images") == group["images"]:
            summaries[group["shard"]] = marker
    todo = [g for g in groups if g["shard"] not in summaries]
    progress(
        f"vda pseudolabel: {len(images)} images in {len(groups)} shards: "
        f"{len(summaries)} done before, {len(todo)} to label"
    )
    if todo:
        start_ray()
        actors = config.actors
        dataset = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
            TeacherLabeler,
            fn_constructor_kwargs={"config": to_dict(config), "teacher_sha256": sha},
            batch_size=1,
            compute=_pool_strategy(ray, actors, len(todo)),
            num_cpus=actors.cpus_per_actor,
            num_gpus=actors.gpus_per_actor or None,
        )
        report = JobProgress(len(todo), "vda pseudolabel", progress, unit="shards")
        for row in dataset.iter_rows():
            summary = json.loads(row["summary"])
            shard = int(summary["sequence"].split("-")[1])
            summaries[shard] = summary
            report.item(
                f"{summary['sequence']}: {summary['frames']} labelled, "
                f"{len(summary['failed'])} failed"
            )
            report.finished(True, summary["frames"])
            report.tick()
        report.final()
        report.close()
    ordered = [summaries[g["shard"]] for g in groups]
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": config.dataset,
        "layout": "pseudolabel",
        "split": "train",
        "depth_kind": "disparity",  # relative disparity, as the teacher predicts it
        "metric": False,
        "max_depth": None,
        "frame_format": config.frame_format,
        "depth_encoding": "f16",
        "chunk_frames": 1,
        "teacher": {
            "checkpoint": config.teacher,
            "sha256": sha,
            "model_size": teacher.config.size,
            "input_size": config.input_size,
            "precision": sorted({s.get("precision", "") for s in ordered if s["frames"]}),
        },
        "totals": {
            "sequences": sum(s["frames"] for s in ordered),
            "frames": sum(s["frames"] for s in ordered),
            "chunks": sum(s["chunks"] for s in ordered),
            "failed": sum(len(s["failed"]) for s in ordered),
        },
        "resolutions": sorted({r for s in ordered for r in s["resolutions"]}),
        # one entry per shard (a group of one-frame sequences), as the pipeline lists shards
        "sequences": [
            {k: s[k] for k in ("sequence", "frames", "chunks", "shards")}
            for s in ordered
            if s["frames"]
        ],
        "failed": [f for s in ordered for f in s["failed"]],
        "schema": [field.name for field in SCHEMA],
    }
    write_bytes(
        join(config.output, "manifest.json"), json.dumps(manifest, indent=2).encode(), config.s3
    )
    return manifest


def _pool_strategy(ray, actors, work: int):
    """A fixed pool of `num_actors`, or with "auto" Ray Data's own autoscaling pool."""
    if actors.num_actors == "auto":
        top = min(actors.max_actors or work, work)
        return ray.data.ActorPoolStrategy(min_size=min(actors.min_actors, top), max_size=top)
    return ray.data.ActorPoolStrategy(size=max(1, min(actors.num_actors, work)))
