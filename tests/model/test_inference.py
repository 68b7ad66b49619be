"""Long-video engine vs a plain in-memory reference of the official windowing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model

from vda.model.affine import fit_affine
from vda.model.inference import (
    InferenceConfig,
    PaddedStream,
    SpeedOptions,
    StreamingDepthEngine,
    WindowAligner,
    WindowConfig,
    blend_weights,
)
from vda.model.transforms import preprocess_frames

LENGTH, OVERLAP, INTERP, STRIDE = 32, 10, 8, 22
KEY_SLOTS = [0, 12, *range(24, 32)]  # slots of a window that become the next one's context


def reference_windowing(model, frames, input_size, metric=False):
    """The official algorithm written out plainly: whole video in memory, no cache.

    Pad with the last frame; windows start every 22 frames; after the first,
    the first 10 slots are replaced by the previous window's slots 0, 12 and
    24..31; predictions resized to the frame size; the new window is fitted
    (scale, shift) on its slots 0-1 onto the reference predictions of the same
    frames; the 8 shared frames are blended 0 -> 1; the rest appended; clamp at 0.
    """
    frames = list(frames)
    count = len(frames)
    height, width = frames[0].shape[:2]
    padding = (STRIDE - count % STRIDE) % STRIDE + OVERLAP
    frames = frames + [frames[-1]] * padding
    raw = []
    previous = None
    for start in range(0, count, STRIDE):
        window = preprocess_frames(np.stack(frames[start : start + LENGTH]), input_size)
        window = window.unsqueeze(0)
        if previous is not None:
            window[:, :OVERLAP] = previous[:, KEY_SLOTS]
        with torch.no_grad():
            depth = model(window)
        depth = F.interpolate(
            depth[0].unsqueeze(1), size=(height, width), mode="bilinear", align_corners=True
        )
        raw.extend(depth[i, 0].numpy().astype(np.float64) for i in range(LENGTH))
        previous = window

    aligned, refs = [], []
    for base in range(0, len(raw), LENGTH):
        if not aligned:
            aligned.extend(raw[:LENGTH])
            refs = [raw[0], raw[12]]
            continue
        if metric:
            scale, shift = 1.0, 0.0
        else:
            p = np.concatenate([raw[base].ravel(), raw[base + 1].ravel()])
            r = np.concatenate([refs[0].ravel(), refs[1].ravel()])
            scale, shift = np.polyfit(p, r, 1)
        post = [np.maximum(raw[base + i] * scale + shift, 0) for i in range(2, OVERLAP)]
        for i in range(INTERP):
            weight = i / (INTERP - 1)
            aligned[-INTERP + i] = aligned[-INTERP + i] * (1 - weight) + post[i] * weight
        aligned.extend(np.maximum(raw[base + i] * scale + shift, 0) for i in range(OVERLAP, LENGTH))
        refs = [refs[0], np.maximum(raw[base + 12] * scale + shift, 0)]
    return np.stack(aligned[:count])


def _video(count, height=20, width=26, seed=0):
    """A smoothly moving random texture, so consecutive frames are related."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width * 3, 3), dtype=np.uint8)
    return [
        np.ascontiguousarray(base[:, t % (2 * width) : t % (2 * width) + width])
        for t in range(count)
    ]


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=21)


def _engine_depth(model, frames, **config):
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=28, **config))
    out = list(engine.run(iter(frames)))
    assert [i for i, _ in out] == list(range(len(frames)))
    return np.stack([d for _, d in out]), engine


@pytest.mark.parametrize("count", [1, 31, 32, 33, 54, 100, 257])
def test_streaming_matches_reference_windowing(model, count):
    frames = _video(count)
    expected = reference_windowing(model, frames, input_size=28)
    cached, _ = _engine_depth(model, frames, cache_encoder=True)
    uncached, _ = _engine_depth(model, frames, cache_encoder=False)
    assert cached.shape == (count, 20, 26)
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(cached - expected).max() <= 1e-5 * scale
    assert np.abs(uncached - cached).max() <= 1e-5 * scale


def test_metric_models_skip_the_alignment(model):
    metric = tiny_model(seed=21, metric=True)
    frames = _video(60)
    expected = reference_windowing(metric, frames, input_size=28, metric=True)
    got, _ = _engine_depth(metric, frames)
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, float(np.abs(expected).max()))


def test_encoder_runs_once_per_frame_with_the_cache(model):
    frames = _video(100)  # windows at 0, 22, 44, 66, 88: 32 + 4 * 22 = 120 padded frames
    baseline = SpeedOptions.baseline()
    _, cached = _engine_depth(model, frames, cache_encoder=True, speed=baseline)
    _, uncached = _engine_depth(model, frames, cache_encoder=False, speed=baseline)
    assert cached.encoder_calls == 32 + 4 * 22
    assert uncached.encoder_calls == 5 * 32
    # Skipping padding: the last window's 20 copies of frame 99 are encoded once.
    _, cached = _engine_depth(model, frames, cache_encoder=True)
    _, uncached = _engine_depth(model, frames, cache_encoder=False)
    assert cached.encoder_calls == 100 + 1
    assert uncached.encoder_calls == 32 + 3 * 32 + (10 + 2 + 1)


@pytest.mark.parametrize("count", [1, 33, 100])
def test_speed_levers_and_compiled_engine_equal_the_eager_baseline(model, count):
    """Every lever (channels-last head, padding skipped, per-device batches) and
    torch.compile keep the baseline engine's depth to 1e-5 of its range."""
    frames = _video(count)
    expected, _ = _engine_depth(model, frames, speed=SpeedOptions.baseline())
    scale = float(np.ptp(expected)) or 1.0
    levers, _ = _engine_depth(model, frames)
    assert np.abs(levers - expected).max() <= 1e-5 * scale
    compiled, engine = _engine_depth(model, frames, speed=SpeedOptions(compile=True))
    assert engine._decode_fn is not model.decode  # the compiled callables ran
    assert np.abs(compiled - expected).max() <= 1e-5 * scale


def test_speed_levers_keep_a_diff_cnn_model_exact():
    diff_model = tiny_model(seed=23, temporal_diff="diff_cnn")
    frames = _video(60)
    expected, _ = _engine_depth(diff_model, frames, speed=SpeedOptions.baseline())
    got, _ = _engine_depth(diff_model, frames)
    assert np.abs(got - expected).max() <= 1e-5 * (float(np.ptp(expected)) or 1.0)


def test_head_decodes_only_the_kept_frames_and_they_are_unchanged(model):
    features = model.encode_frames(torch.rand(2 * 5, 3, 28, 28))
    with torch.inference_mode():
        full = model.decode(features, 2, 5, 28, 28)
        kept = model.decode(features, 2, 5, 28, 28, keep=3)
    assert kept.shape == (2, 3, 28, 28)
    assert torch.allclose(kept, full[:, :3], atol=1e-6)


def test_diff_cnn_model_sees_true_frame_indices(model):
    """Key-frame slots are not adjacent to their neighbours: their difference is dropped."""
    diff_model = tiny_model(seed=22, temporal_diff="diff_cnn")
    seen = []
    original = diff_model.add_motion

    def spy(features, frames, frame_index):
        seen.append(frame_index[0].tolist())
        return original(features, frames, frame_index)

    diff_model.add_motion = spy
    _engine_depth(diff_model, _video(40))
    assert seen[0] == list(range(32))
    assert seen[1] == [0, 12, *range(24, 54)]


def test_fit_and_blend_weights_hand_values():
    prediction = torch.tensor([1.0, 2.0, 3.0])
    assert fit_affine(prediction, 2 * prediction + 1) == pytest.approx((2.0, 1.0))
    torch.testing.assert_close(blend_weights(3), torch.tensor([0.0, 0.5, 1.0]))


def test_window_config_validation():
    with pytest.raises(ValueError, match="key_offset"):
        WindowConfig(length=32, interp=8, key_offset=20)
    with pytest.raises(ValueError, match="no new frames"):
        WindowConfig(length=10, interp=8)
    with pytest.raises(ValueError, match="exceeds the model"):
        StreamingDepthEngine(tiny_model(), InferenceConfig(window=WindowConfig(length=40)))


def test_empty_video_is_an_error(model):
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=28))
    with pytest.raises(ValueError, match="no frames"):
        list(engine.run(iter([])))


def test_engine_holds_about_one_window_of_frames(model):
    """The frame buffer never grows with the video: frames are consumed lazily."""
    consumed = []

    def frames():
        for i, frame in enumerate(_video(150)):
            consumed.append(i)
            yield frame

    engine = StreamingDepthEngine(model, InferenceConfig(input_size=28))
    lags = []
    for index, _ in engine.run(frames()):
        lags.append(len(consumed) - index)
    assert max(lags) <= 32 + 22  # reads at most one window ahead of what it emits


@pytest.mark.parametrize("first", [0, 1, 3])
def test_windows_run_from_any_window_equal_the_stream_and_native_resizes_to_them(model, first):
    """The split of long videos rests on this: window k's raw prediction needs only frames,
    whether the run starts at window 0 or at k (its context encoded afresh)."""
    frames = _video(100)  # 5 windows; frames are 20 x 26, the network sees 28 x 36
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=28))
    whole = list(engine.raw_windows(PaddedStream(enumerate(frames))))
    start = max(0, first * 22 - 10) if first else 0
    part = PaddedStream((i, f) for i, f in enumerate(frames) if i == 0 or i >= start)
    native = list(engine.raw_windows(part, first=first, stop=first + 2, native=True))
    assert [w.index for w in native] == [first, first + 1]
    assert native[0].depth.shape[-2:] != (20, 26) and native[0].frame_size == (20, 26)
    for got, expected in zip(native, whole[first : first + 2]):
        assert got.slot_frames == expected.slot_frames
        torch.testing.assert_close(got.at_frame_size().depth, expected.depth, rtol=0, atol=1e-6)


def test_aligner_over_raw_windows_is_the_engine(model):
    frames = _video(77)
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=28))
    expected = [d for _, d in engine.run(iter(frames))]
    aligner = WindowAligner(WindowConfig())
    got = []
    for raw in engine.raw_windows(PaddedStream(enumerate(frames))):
        got += aligner.push(raw)
    got += aligner.finish()
    got = [d.numpy() for i, d in got if i < 77]
    assert len(got) == 77 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert [a.index for a in aligner.alignments] == [1, 2, 3]
    assert all(a.residual >= 0 for a in aligner.alignments)
    with pytest.raises(ValueError, match="window 3 arrived, window 0 was expected"):
        WindowAligner(WindowConfig()).push(engine_window(engine, frames, 3))


def engine_window(engine, frames, index):
    stream = PaddedStream(enumerate(frames))
    return next(w for w in engine.raw_windows(stream) if w.index == index)
