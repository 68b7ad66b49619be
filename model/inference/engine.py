"""The network half of the windowing, and the engine that chains it with the alignment.

`StreamingDepthEngine` is what the depth and bulk jobs and the evaluation
run. It holds what lasts across windows: the model taken over for inference
(eval mode, device, channels-last head), the speed levers, and the encoder
features of the context slots, carried from one window to the next so that
the encoder runs once per frame.

`raw_windows` depends only on frames, never on earlier outputs, so any run
of windows can be computed on its own (the bulk job splits long videos that
way); `run` feeds it to a `WindowAligner`: the single engine is exactly the
two chained.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..network import VideoDepthAnything
from ..precision import autocast_dtype, precision_used
from ..transforms import preprocess_frames
from .alignment import RawWindow, WindowAligner, WindowAlignment, resize_depth
from .config import InferenceConfig
from .stream import PaddedStream


@dataclass
class StageSeconds:
    """Seconds spent in the encoder and in the head (CUDA synchronised at each boundary)."""

    encoder: float = 0.0
    head: float = 0.0


class StreamingDepthEngine:
    """Frames in (RGB uint8 arrays), (frame index, depth) out, one window of memory.

    The engine takes the model over for inference: eval mode, its device and,
    with `speed.channels_last`, the head's weight layout.
    """

    def __init__(
        self,
        model: VideoDepthAnything,
        config: InferenceConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.config = config or InferenceConfig()
        window = self.config.window
        if window.length > model.config.num_frames:
            raise ValueError(
                f"window length {window.length} exceeds the model's {model.config.num_frames} frames"
            )
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.model = model.to(self.device).eval()
        speed = self.config.speed
        # Any network with `encode_frames`, `decode`, `config` and `diff_cnn` runs here (an
        # ONNX Runtime export does); the PyTorch-only levers apply to the PyTorch model.
        torch_model = isinstance(model, VideoDepthAnything)
        if speed.channels_last and torch_model:
            self.model.head.to(memory_format=torch.channels_last)
        self.encoder_batch, self.head_micro_batch = speed.batches(self.device)
        self._encode_fn = self.model.encode_frames
        self._decode_fn = self.model.decode
        if speed.compile and torch_model:
            self._encode_fn, self._decode_fn = compiled(self.model)
        self.metric = model.config.metric
        self.encoder_calls = 0  # frames encoded: the cache's effect is countable
        self.alignments: list[WindowAlignment] = []  # of the latest `run`
        # Set to a StageSeconds to time the two stages (benchmarks; it costs a sync on CUDA).
        self.stage_seconds: StageSeconds | None = None

    @property
    def precision(self) -> str:
        """What this engine computes in on its device: fp32, fp16 or bf16."""
        return precision_used(self.config.precision, self.device)

    # -- network ------------------------------------------------------------
    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and self.config.speed.pin_memory:
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    @contextlib.contextmanager
    def _stage(self, name: str):
        if self.stage_seconds is None:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - started
        setattr(self.stage_seconds, name, getattr(self.stage_seconds, name) + elapsed)

    def _encode(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        chunks: list[list[torch.Tensor]] = []
        step = self.encoder_batch
        with self._stage("encoder"):
            for i in range(0, inputs.shape[0], step):
                chunks.append(self._encode_fn(self._to_device(inputs[i : i + step])))
                self.encoder_calls += min(step, inputs.shape[0] - i)
            return [torch.cat(parts, dim=0) for parts in zip(*chunks)]

    def _prepare(
        self, stream: PaddedStream, ids: list[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Network inputs and encoder features of frames `ids`.

        With `skip_padding`, the padding frames (all copies of the last frame)
        are preprocessed and encoded once and their copy repeated.
        """
        size = self.config.input_size
        if not self.config.speed.skip_padding:
            inputs = preprocess_frames(np.stack([stream.get(i) for i in ids]), size)
            return inputs, self._encode(inputs)
        real = list(itertools.takewhile(stream.is_real, ids))  # padding is a suffix
        unique = real + ([ids[len(real)]] if len(real) < len(ids) else [])
        inputs = preprocess_frames(np.stack([stream.get(i) for i in unique]), size)
        features = self._encode(inputs)
        if len(unique) == len(ids):
            return inputs, features
        repeat = torch.tensor([min(k, len(unique) - 1) for k in range(len(ids))])
        return inputs[repeat], [f[repeat.to(f.device)] for f in features]

    def _predict(
        self,
        inputs: torch.Tensor,
        features: list[torch.Tensor],
        frame_index: list[int],
        out_size: tuple[int, int] | None,
        real_slots: int,
    ) -> torch.Tensor:
        length, _, height, width = inputs.shape
        if self.model.diff_cnn is not None:
            index = torch.tensor([frame_index], device=self.device)
            features = self.model.add_motion(features, self._to_device(inputs.unsqueeze(0)), index)
        keep = real_slots if real_slots < length else None
        with self._stage("head"):
            depth = self._decode_fn(
                features, 1, length, height, width, micro_batch=self.head_micro_batch, keep=keep
            )
        depth = depth.float().reshape(-1, height, width)
        if out_size is not None:
            depth = resize_depth(depth, out_size)
        if keep is not None:  # padding slots: never output; the last real depth stands in
            depth = torch.cat([depth, depth[-1:].expand(length - keep, *depth.shape[1:])])
        return depth.cpu()

    def _network(self):
        autocast = autocast_dtype(self.config.precision, self.device)
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(
            torch.autocast(self.device.type, dtype=autocast, enabled=autocast is not None)
        )
        return stack

    # -- the stream ---------------------------------------------------------
    def run(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame index, float32 depth at the decoded frame size), in order."""
        stream = PaddedStream(enumerate(frames))
        if not stream.has_frame(0):
            raise ValueError("the video has no frames")
        aligner = WindowAligner(self.config.window, self.metric)
        self.alignments = aligner.alignments
        for raw in self.raw_windows(stream):
            for index, depth in aligner.push(raw):
                if stream.is_real(index):
                    yield index, depth.numpy()
        for index, depth in aligner.finish():
            if stream.is_real(index):
                yield index, depth.numpy()

    def raw_windows(
        self, stream: PaddedStream, first: int = 0, stop: int | None = None, native: bool = False
    ) -> Iterator[RawWindow]:
        """The network's predictions of windows `first`, `first + 1`, ... (before `stop`).

        Each window needs only frames: frame 0, the frame `key_offset` before
        it and its own; `stream` must hold those from frame
        `start(first) - key_offset` on. Starting at `first > 0` encodes the
        context slots of that one window afresh; later windows reuse them.
        `native` keeps the network's resolution (see `RawWindow`).
        """
        w = self.config.window
        if not stream.has_frame(w.start(first)):
            return
        out_size = tuple(stream.get(w.start(first) if first else 0).shape[:2])
        context_inputs: torch.Tensor | None = None
        context_features: list[torch.Tensor] | None = None
        index = first
        with self._network():
            while stop is None or index < stop:
                slot_frames = w.slot_frames(index)
                new_ids = slot_frames if index == 0 else slot_frames[w.overlap :]
                new_inputs, new_features = self._prepare(stream, new_ids)
                if index == 0:
                    inputs, features = new_inputs, new_features
                else:
                    if context_inputs is None:  # the first window of a run that starts mid-video
                        context_inputs, context_features = self._prepare(
                            stream, slot_frames[: w.overlap]
                        )
                    inputs = torch.cat([context_inputs, new_inputs], dim=0)
                    if self.config.cache_encoder:
                        old = context_features
                    else:
                        old = self._encode(context_inputs)
                    features = [torch.cat([a, b], dim=0) for a, b in zip(old, new_features)]
                # Slots hold increasing frames after slot 0, so padding is a suffix.
                real_slots = len(list(itertools.takewhile(stream.is_real, slot_frames)))
                if not self.config.speed.skip_padding:
                    real_slots = w.length
                size = None if native else out_size
                raw = self._predict(inputs, features, slot_frames, size, real_slots)
                yield RawWindow(index, slot_frames, raw, frame_size=out_size if native else None)

                keep = [0, w.key_slot, *range(w.length - w.interp, w.length)]
                context_inputs = inputs[keep]  # advanced indexing copies: no view holds the window
                context_features = (
                    [f[keep] for f in features] if self.config.cache_encoder else None
                )
                index += 1
                stream.forget_before(w.start(index) + w.overlap)
                if not stream.has_frame(w.start(index)):
                    break


def compiled(model: VideoDepthAnything):
    """torch.compile'd (encode_frames, decode) of `model`, shapes static.

    Every shape compiles once (a resolution gives a few: encoder batches,
    the last window's decoded slots), so the cache limit is raised to hold
    several resolutions' graphs rather than fall back to eager silently.
    """
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return (
        torch.compile(model.encode_frames, dynamic=False),
        torch.compile(model.decode, dynamic=False),
    )
