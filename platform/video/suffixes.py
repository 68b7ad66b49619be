"""Which files are videos and which are images: the one list every job lists storage with."""

from __future__ import annotations

# containers PyAV opens (FFmpeg reads many more; these are what archives hold)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# colour images OpenCV decodes (8 or 16 bit)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# frames of an image-sequence folder: colour images, or linear OpenEXR renders
FRAME_SUFFIXES = (*IMAGE_SUFFIXES, ".exr")
