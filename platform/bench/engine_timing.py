"""One engine over a synthetic clip, timed: the harness of the engine benchmarks.

`vda bench inference` and the GPU check (`scripts/gpu_steps`) time engines
the same way, so their numbers compare: a texture sliding over frames made
on the fly (no video in memory), random weights (speed does not depend on
their values, and nothing is downloaded), every tensor shape warmed up
before the clock starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vda.model import ModelConfig, VideoDepthAnything
from vda.model.inference import InferenceConfig, StageSeconds, StreamingDepthEngine


def synthetic_frames(count: int, height: int, width: int, seed: int = 0) -> Iterator[np.ndarray]:
    """A texture sliding 2 px per frame, generated lazily (no video held in memory)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(height, width * 2, 3), dtype=np.uint8)
    for t in range(count):
        offset = (2 * t) % width
        yield texture[:, offset : offset + width]


def random_model(size: str) -> VideoDepthAnything:
    """Random weights whose output is not identically zero (the default init's is, after
    ReLU), so that comparing the cached and uncached outputs means something."""
    torch.manual_seed(0)
    model = VideoDepthAnything(ModelConfig(size=size))
    with torch.no_grad():
        for module in model.head.motion_modules:
            torch.nn.init.normal_(module.temporal_transformer.proj_out.weight, std=0.02)
        model.head.scratch.output_conv2[2].bias.fill_(1.0)
    return model


def timed_run(engine: StreamingDepthEngine, frames: int, height: int, width: int):
    """(depth of every frame, seconds in all, seconds after the first depth came out)."""
    start = time.perf_counter()
    first_output = None
    depths = []
    for _, depth in engine.run(synthetic_frames(frames, height, width)):
        if first_output is None:
            first_output = time.perf_counter()
        depths.append(depth)
    end = time.perf_counter()
    return np.stack(depths), end - start, end - first_output


@dataclass
class EngineRun:
    """One engine configuration over the clip: warm-up (compiling included) apart."""

    name: str
    warmup_s: float
    seconds: float
    frames: int
    encoder_s: float
    head_s: float
    depth: np.ndarray

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    def summary(self) -> dict:
        return {
            "name": self.name,
            "fps": self.fps,
            "ms_per_frame": 1000 * self.seconds / self.frames,
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "encoder_share": self.encoder_s / self.seconds,
            "head_share": self.head_s / self.seconds,
        }


def run_engine(
    name: str,
    model: VideoDepthAnything,
    config: InferenceConfig,
    frames: int,
    height: int,
    width: int,
    device: str,
) -> EngineRun:
    """Warm up on two windows (every shape a clip shows, and compiling), then time the clip."""
    engine = StreamingDepthEngine(model, config, device=device)
    window = config.window
    started = time.perf_counter()
    timed_run(engine, window.length + window.stride + 1, height, width)
    timed_run(engine, min(frames, window.length + window.stride + 1), height, width)
    warmup = time.perf_counter() - started
    engine.stage_seconds = StageSeconds()
    depth, seconds, _ = timed_run(engine, frames, height, width)
    return EngineRun(
        name,
        warmup,
        seconds,
        frames,
        engine.stage_seconds.encoder,
        engine.stage_seconds.head,
        depth,
    )
