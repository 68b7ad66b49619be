"""Segments and the ordered stitch without Ray: equal to the single engine at any cut."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_model

from vda.model.inference import (
    InferenceConfig,
    PaddedStream,
    StreamingDepthEngine,
    WindowAligner,
    WindowConfig,
)
from vda.platform.infer.segments import known_length, plan_segments, stitched_frames


def _video(count, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(20, 26 * 4, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, t % 52 : t % 52 + 26]) for t in range(count)]


@pytest.mark.parametrize("count", [23, 44, 45, 46, 66, 67, 100])
@pytest.mark.parametrize("segment_frames", [22, 44])
def test_stitched_segments_equal_the_single_engine_whatever_the_video_end(count, segment_frames):
    """Ends just after a window start (45 = start(2) + 1) are the hard case: the frames after
    it in the previous segment's last window are padding, which only a later record proves."""
    engine = StreamingDepthEngine(tiny_model(seed=5), InferenceConfig(input_size=28))
    frames = _video(count)
    expected = list(engine.run(iter(frames)))
    window = WindowConfig()
    # a plan from an estimate that is one window too long: a trailing segment finds no frames
    plan = plan_segments(count + 22, window, segment_frames) or [(0, None)]
    records, stored = [], {}
    for first, stop in plan:
        start = max(0, window.start(first) - window.key_offset) if first else 0
        stream = PaddedStream((i, f) for i, f in enumerate(frames) if i == 0 or i >= start)
        raws = list(engine.raw_windows(stream, first, stop, native=True))
        stored.update({raw.index: raw for raw in raws})
        records.append({"windows": [r.index for r in raws], "length": known_length(stream, start)})
    got = list(
        stitched_frames(records, lambda _, k: stored[k].at_frame_size(), WindowAligner(window))
    )
    assert [i for i, _ in got] == list(range(count))
    for (_, mine), (_, theirs) in zip(got, expected):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)


def test_a_missing_window_is_an_error_not_a_silent_gap():
    window = WindowConfig()
    engine = StreamingDepthEngine(tiny_model(seed=5), InferenceConfig(input_size=28))
    frames = _video(70)
    raws = {r.index: r for r in engine.raw_windows(PaddedStream(enumerate(frames)))}
    records = [{"windows": [0, 1], "length": None}, {"windows": [3], "length": 70}]
    with pytest.raises(RuntimeError, match="window 3, window 2 was due"):
        list(stitched_frames(records, lambda _, k: raws[k], WindowAligner(window)))
