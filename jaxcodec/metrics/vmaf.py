"""VMAF through a user's FFmpeg with the libvmaf filter, detected at run time.

Neither PyAV's bundled FFmpeg nor Debian's has libvmaf, and we do not reimplement VMAF's SVM
here: where no ``ffmpeg`` on PATH (or ``$JAXCODEC_FFMPEG``) lists the ``libvmaf`` filter,
`vmaf` returns None and reports print `UNAVAILABLE` -- never a made-up number. Its DLM and
SSIM-like parts exist in JAX (`jaxcodec.metrics.dlm`, `jaxcodec.metrics.ssim`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from jaxcodec.frame import Frame
from jaxcodec.metrics.psnr import check_same_shape

UNAVAILABLE = "unavailable"


@functools.lru_cache(maxsize=None)
def find_ffmpeg_with_libvmaf() -> str | None:
    """Path of an ffmpeg executable whose filter list has libvmaf, or None."""
    exe = os.environ.get("JAXCODEC_FFMPEG") or shutil.which("ffmpeg")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if any(line.split()[1:2] == ["libvmaf"] for line in out.splitlines() if line.strip()) else None


def vmaf_available() -> bool:
    return find_ffmpeg_with_libvmaf() is not None


def vmaf(ref: Frame, dist: Frame, *, fps: Fraction = Fraction(25)) -> float | None:
    """Mean VMAF (libvmaf's default model) of stacked ``dist`` vs ``ref``; None when unavailable."""
    exe = find_ffmpeg_with_libvmaf()
    if exe is None:
        return None
    for c in "yuv":
        check_same_shape(getattr(ref, c), getattr(dist, c), f"{c.upper()} planes")
    from jaxcodec.io import write_y4m

    with tempfile.TemporaryDirectory(prefix="jaxcodec-vmaf-") as tmp:  # libvmaf reads files; not a training path
        a, b, log = Path(tmp, "ref.y4m"), Path(tmp, "dist.y4m"), Path(tmp, "vmaf.json")
        write_y4m(a, ref.map(np.asarray), fps)
        write_y4m(b, dist.map(np.asarray), fps)
        subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-i", str(b), "-i", str(a), "-lavfi",
                        f"libvmaf=log_fmt=json:log_path={log}", "-f", "null", "-"], check=True, timeout=3600)
        data = json.loads(log.read_text())
    return float(data["pooled_metrics"]["vmaf"]["mean"])
