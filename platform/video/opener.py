"""Open what a user names as a video: a video file, a readable stream, or a folder of frames.

The one place that knows both readers. It sits above `decode` (video files
and streams) and `sequence` (folders of numbered images) so that neither
imports the other: the sequence reader builds on the decoder's options,
errors and `VideoInfo`, and the decoder needs nothing from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from .decode import DecodeOptions, VideoDecodeError, VideoReader
from .sequence import open_folder


def open_video(
    source: str | Path | IO[bytes],
    options: DecodeOptions | None = None,
    name: str | None = None,
    sequence_fps: float | None = None,
) -> VideoReader:
    """Open a local path or a readable binary stream as a VideoReader.

    A local folder is an image sequence (`ImageSequenceReader`, same interface).
    """
    if name is None:
        name = (
            str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "<stream>")
        )
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return open_folder(Path(source), options or DecodeOptions(), name, sequence_fps)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise VideoDecodeError(f"video {name!r} does not exist")
    return VideoReader(source, options or DecodeOptions(), name)
