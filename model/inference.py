"""Long-video inference: the official key-frame windowing, streamed, with an encoder cache.

The official algorithm (Video Depth Anything `infer_video_depth`):
- windows of `length` = 32 slots advance by `stride` = 22 frames; the video is
  padded with copies of its last frame to fill the final window;
- the first `overlap` = 10 slots of every window after the first are context:
  frame 0, the frame `key_offset` = 10 before the window start, and the
  `interp` = 8 frames the window shares with the previous one;
- each window's predictions are resized (bilinear, align_corners) to the
  decoded frame size; one least-squares scale and shift over every pixel of
  the two key slots maps them onto the earlier predictions of the same frames
  (metric models skip this); the 8 shared frames are blended linearly from
  the old to the new prediction (weights 0 ... 1); the rest are appended;
  aligned predictions are clamped at 0.

What this implementation adds:
- streaming: frames come from an iterator and depths leave as soon as they are
  final (everything but the last `interp` frames of the latest window), so
  memory is one window, whatever the video length;
- the encoder runs once per frame: the context slots' features were computed
  in the previous window and are cached (the head still sees all 32 slots);
- the diff-CNN branch gets each slot's frame index, so key-frame slots get no
  frame difference;
- autocast on CUDA (fp16 as the official code, or bf16), fp32 on CPU, and
  micro-batched encoder and high-resolution head stages;
- the two halves of the algorithm are apart: the network part of a window
  (`StreamingDepthEngine.raw_windows`) depends only on frames, never on
  earlier outputs, so any run of windows can be computed on its own (the bulk
  job splits long videos that way); the sequential part (`WindowAligner`:
  scale/shift chain, blending, clamping) needs only those raw windows, in
  order. The single engine is exactly the two chained;
- per-window alignment statistics (scale, shift, key-frame fit residual),
  the quality signals of an archive nobody can watch.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .affine import fit_affine
from .network import VideoDepthAnything
from .precision import Precision, autocast_dtype, precision_used
from .transforms import DEFAULT_INPUT_SIZE, preprocess_frames


@dataclass
class WindowConfig:
    """Geometry of the sliding windows (official defaults)."""

    length: int = 32
    interp: int = 8
    key_offset: int = 10

    @property
    def overlap(self) -> int:
        """Context slots: the two key frames plus the shared frames."""
        return self.interp + 2

    @property
    def stride(self) -> int:
        return self.length - self.overlap

    def start(self, window: int) -> int:
        """The first frame of window `window` (its first new frame is `start + overlap`)."""
        return window * self.stride

    def slot_frames(self, window: int) -> list[int]:
        """The frame each slot of window `window` holds (frames past the end are padding)."""
        start = self.start(window)
        if window == 0:
            return list(range(self.length))
        return [0, start - self.key_offset, *range(start + 2, start + self.length)]

    def window_count(self, frames: int) -> int:
        """Windows the engine runs for a video of `frames` frames (one more starts while
        frame `start` exists)."""
        return max(1, math.ceil(frames / self.stride))

    @property
    def key_slot(self) -> int:
        """The slot of a window that becomes the next window's second key frame."""
        return self.stride - self.key_offset

    def __post_init__(self) -> None:
        if self.interp < 2:
            raise ValueError(f"window.interp must be at least 2, got {self.interp}")
        if self.stride < 1:
            raise ValueError(
                f"window.length {self.length} leaves no new frames after {self.overlap} context slots"
            )
        if not self.overlap <= self.key_slot < self.length:
            raise ValueError(
                f"window.key_offset {self.key_offset} must put the second key frame among a "
                f"window's new frames (stride {self.stride} - key_offset >= overlap {self.overlap})"
            )


@dataclass
class SpeedOptions:
    """The engine's speed levers, each measured by `vda bench inference` (README).

    None changes the depth beyond float32 rounding (tests hold every one to
    1e-5 of the depth range against `baseline()`). Defaults are what paid on
    the machines measured; a lever that did not pay is off.
    """

    # The head's weights in channels-last layout: oneDNN's convolutions then skip a
    # layout conversion per call (1.3-1.5x on the head on CPU).
    channels_last: bool = True
    # Padding slots of a video's last window are copies of its last frame: encode the
    # copy once, and skip their high-resolution head stages (their depth is never
    # output; the temporal modules still see all slots).
    skip_padding: bool = True
    # torch.compile (inductor) of the encoder and the head, shapes fixed per video
    # resolution. CPU: 1.1x on the encoder, nothing on the head, ~70 s of compiling
    # per resolution for vits, so off. GPU: unmeasured (no device yet).
    compile: bool = False
    # Frames per encoder call and per high-resolution head call; 0: per device
    # (CPU 1 and 2: small batches stay in cache; CUDA 8 and 4).
    encoder_batch: int = 0
    head_micro_batch: int = 0
    # CUDA: copy inputs from pinned memory without blocking the host.
    pin_memory: bool = True

    @classmethod
    def baseline(cls) -> SpeedOptions:
        """The engine before any lever (eager, NCHW, padding computed, batches 8 and 4):
        what the speed-ups are measured against."""
        return cls(
            channels_last=False,
            skip_padding=False,
            compile=False,
            encoder_batch=8,
            head_micro_batch=4,
            pin_memory=False,
        )

    def batches(self, device: torch.device) -> tuple[int, int]:
        """(encoder frames per call, head frames per call) on `device`."""
        cuda = device.type == "cuda"
        return (
            self.encoder_batch or (8 if cuda else 1),
            self.head_micro_batch or (4 if cuda else 2),
        )

    def __post_init__(self) -> None:
        if self.encoder_batch < 0 or self.head_micro_batch < 0:
            raise ValueError("speed.encoder_batch and speed.head_micro_batch must be >= 0")


@dataclass
class InferenceConfig:
    window: WindowConfig = field(default_factory=WindowConfig)
    input_size: int = DEFAULT_INPUT_SIZE
    precision: Precision = "auto"  # auto: fp16 on CUDA (as the official code), fp32 on CPU
    cache_encoder: bool = True
    speed: SpeedOptions = field(default_factory=SpeedOptions)


def fit_residual(
    prediction: torch.Tensor, reference: torch.Tensor, scale: float, shift: float
) -> float:
    """RMS of the fit's error relative to the reference's mean magnitude (0 = a perfect fit)."""
    error = prediction.double() * scale + shift - reference.double()
    magnitude = float(reference.double().abs().mean())
    return float(error.pow(2).mean().sqrt()) / magnitude if magnitude > 0 else 0.0


def blend_weights(count: int) -> torch.Tensor:
    """Weights of the new prediction across the shared frames: 0, 1/(n-1), ..., 1."""
    step = 1.0 / (count - 1)
    return torch.tensor([0.0] + [i * step for i in range(1, count - 1)] + [1.0])


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, h, w) network-resolution depth to (T, H, W) frame size, as the official code resizes."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    resized = F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=True)
    return resized[:, 0]


@dataclass
class RawWindow:
    """The network's prediction for one window, before alignment.

    `depth` is at the decoded frame size, or, from `raw_windows(native=True)`,
    still at the network's resolution (often several times smaller: what a
    split video stores between its segments and its stitch); `at_frame_size`
    resizes it then.
    """

    index: int  # window number: it starts at frame index * stride
    slot_frames: list[int]
    depth: torch.Tensor  # (length, h, w) float32, CPU
    frame_size: tuple[int, int] | None = None  # (H, W) to resize to, when depth is native

    def at_frame_size(self) -> RawWindow:
        if self.frame_size is None:
            return self
        return RawWindow(self.index, self.slot_frames, resize_depth(self.depth, self.frame_size))


@dataclass
class WindowAlignment:
    """How window `index` was fitted onto the earlier predictions of its key frames."""

    index: int
    scale: float
    shift: float
    residual: float


class WindowAligner:
    """The sequential half: raw windows in (in order), final (frame, depth) pairs out.

    It holds one window of state: the two key-frame references and the
    `interp` predictions waiting to be blended with the next window.
    """

    def __init__(self, window: WindowConfig, metric: bool = False) -> None:
        self.window = window
        self.metric = metric
        self.alignments: list[WindowAlignment] = []
        self._refs: list[torch.Tensor] = []
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._expected = 0

    def push(self, raw: RawWindow) -> list[tuple[int, torch.Tensor]]:
        """Align one window; returns the frames that are final now."""
        w = self.window
        if raw.index != self._expected:
            raise ValueError(f"window {raw.index} arrived, window {self._expected} was expected")
        self._expected += 1
        depth, slots = raw.depth, raw.slot_frames
        if raw.index == 0:
            aligned = depth
            self._refs = [depth[0], depth[w.key_slot]]
            finals = [(slots[i], aligned[i]) for i in range(w.length - w.interp)]
        else:
            reference = torch.stack(self._refs)
            if self.metric:
                scale, shift = 1.0, 0.0
            else:
                scale, shift = fit_affine(depth[:2], reference)
            residual = fit_residual(depth[:2], reference, scale, shift)
            self.alignments.append(WindowAlignment(raw.index, scale, shift, residual))
            aligned = (depth * scale + shift).clamp_min(0)
            weights = blend_weights(w.interp)
            shared = aligned[2 : w.overlap]
            blended = [
                (index, old * (1 - weights[i]) + shared[i] * weights[i])
                for i, (index, old) in enumerate(self._pending)
            ]
            fresh = [(slots[i], aligned[i]) for i in range(w.overlap, w.length - w.interp)]
            finals = blended + fresh
            self._refs = [self._refs[0], aligned[w.key_slot]]
        self._pending = [(slots[i], aligned[i]) for i in range(w.length - w.interp, w.length)]
        return finals

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """The last window's shared frames: final once no window follows."""
        pending, self._pending = self._pending, []
        return pending


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


class PaddedStream:
    """Random access to (index, frame) pairs within a sliding range, padded with the last frame.

    Frames beyond the end of the video are copies of the last one, as the
    official code pads; `is_real` tells them apart. Frames before
    `forget_before` are dropped, so memory stays at about one window. The
    indices may skip (a segment of a long video needs frame 0, then frames
    from just before its first window on), but must increase.
    """

    def __init__(self, frames: Iterable[tuple[int, np.ndarray]]) -> None:
        self._frames = iter(frames)
        self._buffer: dict[int, np.ndarray] = {}
        self._next = 0
        self.length: int | None = None  # known once the iterator is exhausted
        self._last: np.ndarray | None = None

    def _read_until(self, index: int) -> None:
        while self.length is None and self._next <= index:
            item = next(self._frames, None)
            if item is None:
                self.length = self._next
                break
            position, frame = item
            self._buffer[position] = frame
            self._last = frame
            self._next = position + 1

    def get(self, index: int) -> np.ndarray:
        self._read_until(index)
        if self.length is not None and index >= self.length:
            return self._last
        return self._buffer[index]

    def has_frame(self, index: int) -> bool:
        self._read_until(index)
        return self.length is None or index < self.length

    def is_real(self, index: int) -> bool:
        return self.has_frame(index)

    def forget_before(self, index: int) -> None:
        for old in [i for i in self._buffer if i < index]:
            del self._buffer[old]
