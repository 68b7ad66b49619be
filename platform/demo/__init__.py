"""The end-to-end demonstration behind `make demo`, on embedded defaults.

Synthetic data -> a short DDP training of a tiny head (2 workers) -> `vda
infer` over held-out synthetic videos (and any videos the user adds) ->
evaluation against their exact ground truth -> where everything is. In-process
Ray, local folders, a local SQLite MLflow store: no cluster, no S3, no
downloads. A tiny model trained for minutes on synthetic data is a pipeline
demonstration, not a depth model: the numbers show the plumbing works.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..core.config import build
from ..core.session import start_ray
from ..data.prepare import PrepareConfig, SyntheticOptions, prepare
from ..data.synthetic import SyntheticConfig, SyntheticScene
from ..eval.scoring import evaluate_outputs
from ..infer.config import InferConfig
from ..infer.job import run_infer
from ..train.config import TrainConfig
from ..train.driver import train
from ..video.writers import write_video

HEIGHT, WIDTH = 56, 84  # multiples of 14: the network input is the frame itself
HELD_OUT_SEED = 7


def run_demo(workdir: Path, extra_videos: list[Path], say=print) -> dict:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{workdir / 'mlruns.db'}"
    mlflow = {"tracking_uri": tracking, "experiment": "vda-demo"}
    started = time.perf_counter()
    start_ray(num_cpus=2, include_dashboard=False)  # quiet unless `vda --verbose demo`

    say("1/5 synthetic training data (procedural scenes, exact depth and poses)")
    train_data, held_out = workdir / "data" / "train", workdir / "data" / "held_out"
    prepare(
        PrepareConfig(
            dst=str(train_data),
            chunk_frames=32,
            synthetic=SyntheticOptions(sequences=8, frames=32, height=HEIGHT, width=WIDTH, seed=0),
        ),
        progress=lambda _: None,
    )
    prepare(
        PrepareConfig(
            dst=str(held_out),
            dataset="synthetic_held_out",
            split="test",
            chunk_frames=64,
            synthetic=SyntheticOptions(
                sequences=2, frames=64, height=HEIGHT, width=WIDTH, seed=HELD_OUT_SEED
            ),
        ),
        progress=lambda _: None,
    )

    say("2/5 training the tiny spatio-temporal head: 2 DDP workers (Ray Train)")
    config = build(
        TrainConfig,
        {
            "name": "demo",
            "storage_path": str(workdir / "runs"),
            "data": {
                "train": str(train_data),
                "val": str(held_out),
                "clip": {
                    "clip_len": 8,
                    "batch_size": 2,
                    "windows_per_chunk": 4,
                    "augment": {"height": HEIGHT, "width": WIDTH},
                },
                "val_clips": 4,
            },
            "optim": {"lr": 2e-3, "warmup_steps": 4},
            "epochs": 2,
            "steps_per_epoch": 12,
            "num_workers": 2,
            "cpus_per_worker": 0.5,
            "mlflow": mlflow,
        },
    )
    trained = train(config)
    checkpoint = Path(trained.best_checkpoint_path or trained.checkpoint_path) / "checkpoint.pt"

    say("3/5 held-out synthetic videos (H.264)")
    videos = workdir / "videos"
    videos.mkdir(exist_ok=True)
    for index in range(2):
        scene = SyntheticScene(
            SyntheticConfig(frames=64, height=HEIGHT, width=WIDTH),
            seed=HELD_OUT_SEED * 100_003 + index,
        )
        name = f"synthetic_{HELD_OUT_SEED}_{index:04d}"
        write_video(videos / f"{name}.mp4", (f.rgb for f in scene.frames()), fps=24)
    for video in extra_videos:
        shutil.copy(video, videos / video.name)

    say("4/5 bulk depth: vda infer over the video folder (a pool of Ray actors)")
    inferred = run_infer(
        build(
            InferConfig,
            {
                "input": str(videos),
                "output": str(workdir / "depth"),
                "checkpoint": str(checkpoint),
                "input_size": HEIGHT,
                "actors": {"num_actors": 1, "cpus_per_actor": 1.0},
                "mlflow": mlflow,
                "progress_s": 10,
            },
        ),
        progress=lambda line: say(f"    {line}"),
    )

    say("5/5 evaluation of the inferred depth against the exact ground truth")
    report = evaluate_outputs(str(workdir / "depth"), str(held_out))
    return {
        "workdir": workdir,
        "train": trained,
        "checkpoint": checkpoint,
        "infer": inferred,
        "eval": report,
        "tracking": tracking,
        "seconds": time.perf_counter() - started,
    }
