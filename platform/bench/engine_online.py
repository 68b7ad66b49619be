"""`vda bench inference --online`: the online engine against the offline one, same frames.

The two answer different questions, so both rates and both latencies are
measured:

- frames/s: online runs the encoder and the whole head once per frame; the
  offline engine also runs the encoder once per frame (its cache), but the
  head over 32 slots per 22 new frames. Their ratio is what streaming costs
  or saves in throughput;
- latency per frame, from the frame entering the engine to its depth coming
  out: online it is one frame's pass; offline a frame waits for the rest of
  its window (up to 22 frames later) and for the blend with the next.

Same random weights, same synthetic frames (`engine_timing`), both warmed up
on every shape before the clock starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from vda.model.inference import InferenceConfig, OnlineDepthEngine, StreamingDepthEngine

from .engine_timing import random_model, synthetic_frames


def _percentiles_ms(latencies: list[float]) -> dict:
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95)}


def _offline(model, frames: int, height: int, width: int, input_size: int, device: str) -> dict:
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=input_size), device=device)
    warm = engine.config.window.length + engine.config.window.stride + 1
    for _ in engine.run(synthetic_frames(warm, height, width)):
        pass
    entered: dict[int, float] = {}

    def timed(source: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for index, frame in enumerate(source):
            entered[index] = time.perf_counter()
            yield frame

    latencies = []
    start = time.perf_counter()
    for index, _ in engine.run(timed(synthetic_frames(frames, height, width))):
        latencies.append(time.perf_counter() - entered.pop(index))
    seconds = time.perf_counter() - start
    return {"fps": frames / seconds, "seconds": seconds, **_percentiles_ms(latencies)}


def _online(model, frames: int, height: int, width: int, input_size: int, device: str) -> dict:
    engine = OnlineDepthEngine(model, input_size, device=device)
    for frame in synthetic_frames(3, height, width):  # the first frame's and a later's shapes
        engine.step(frame)
    engine.reset()
    latencies = []
    start = time.perf_counter()
    for frame in synthetic_frames(frames, height, width):
        entered = time.perf_counter()
        engine.step(frame)
        latencies.append(time.perf_counter() - entered)
    seconds = time.perf_counter() - start
    return {"fps": frames / seconds, "seconds": seconds, **_percentiles_ms(latencies)}


def measure_online(
    size: str, frames: int, height: int, width: int, input_size: int, device: str
) -> dict:
    """Both engines over `frames` frames: rates, latencies and their ratios."""
    model = random_model(size)
    offline = _offline(model, frames, height, width, input_size, device)
    online = _online(model, frames, height, width, input_size, device)
    return {
        "size": size,
        "frames": frames,
        "height": height,
        "width": width,
        "input_size": input_size,
        "offline": offline,
        "online": online,
        "fps_ratio": online["fps"] / offline["fps"],
        "latency_p50_ratio": online["latency_p50_ms"] / offline["latency_p50_ms"],
    }
