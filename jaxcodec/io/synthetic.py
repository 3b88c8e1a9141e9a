"""Generated training content, reproducible from a seed (nothing is downloaded).

The shipped natural clips are two (carphone, bikes); the held-out clip (bigbuckbunny) is
computer-animated. Learned tools that train only on the two natural clips overfit their
content, so every trainer can add generated clips of two kinds:

* `moving_textures`: multi-scale Gaussian-filtered noise with sharp rectangles, panning at
  integer speeds (camera-noise-like texture, block-aligned motion).
* `cartoon_clips`: rendered scenes in the style of computer animation: a smooth shaded
  background, flat- and gradient-shaded ellipses and polygons with anti-aliased edges, some
  carrying fine texture, each moving at its own sub-pixel velocity (occlusions, non-rigid
  layouts, fractional motion).

Both return stacked uint8 4:2:0 `Frame` s, ``(T, H, W)``.
"""

from __future__ import annotations

import numpy as np

from jaxcodec.frame import Frame, make_frame

GENERATED = "generated"
"""Clip name that trainers expand to `moving_textures` (6 clips, 128x128)."""
CARTOON = "cartoon"
"""Clip name that trainers expand to `cartoon_clips` (4 clips, 256x144)."""


def moving_textures(*, count: int = 6, frames: int = 24, size: int = 128, seed: int = 1234) -> list[Frame]:
    """Synthetic clips: multi-scale smooth textures with sharp rectangles, panning at integer speeds."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        canvas = size * 2
        planes = []
        for sub in (1, 2, 2):
            n = canvas // sub
            tex = sum(gaussian_filter(rng.normal(size=(n, n)), s) * s for s in (0.7, 2.0, 6.0))
            tex = (tex - tex.mean()) / (tex.std() + 1e-6)
            planes.append(tex)
        for _ in range(12):  # sharp-edged objects in luma and chroma
            y0, x0 = rng.integers(0, canvas - 16, 2)
            hh, ww = rng.integers(6, 40, 2)
            val = rng.normal() * 1.5
            planes[0][y0:y0 + hh, x0:x0 + ww] += val
            planes[1][y0 // 2:(y0 + hh) // 2, x0 // 2:(x0 + ww) // 2] += val * 0.3
        contrast = rng.uniform(20, 50)
        planes = [np.clip(128 + contrast * p * (1.0 if i == 0 else 0.4), 0, 255) for i, p in enumerate(planes)]
        vx, vy = rng.integers(-3, 4, 2)
        ys, us, vs = [], [], []
        for t in range(frames):
            oy = int(np.clip(size // 2 + vy * t, 0, canvas - size)) // 2 * 2
            ox = int(np.clip(size // 2 + vx * t, 0, canvas - size)) // 2 * 2
            ys.append(planes[0][oy:oy + size, ox:ox + size])
            us.append(planes[1][oy // 2:(oy + size) // 2, ox // 2:(ox + size) // 2])
            vs.append(planes[2][oy // 2:(oy + size) // 2, ox // 2:(ox + size) // 2])
        clips.append(make_frame(*(np.stack(p).round().astype(np.uint8) for p in (ys, us, vs))))
    return clips


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range conversion of float RGB in [0, 255], channels last."""
    m = np.array([[0.257, 0.504, 0.098], [-0.148, -0.291, 0.439], [0.439, -0.368, -0.071]])
    return rgb @ m.T + np.array([16.0, 128.0, 128.0])


def _render_cartoon_frame(shapes, background, t: float, h: int, w: int, ss: int) -> np.ndarray:
    """RGB frame at time ``t``: painter's algorithm over ``shapes`` at ``ss``-times supersampling."""
    hh, ww = h * ss, w * ss
    yy, xx = np.meshgrid((np.arange(hh) + 0.5) / ss, (np.arange(ww) + 0.5) / ss, indexing="ij")
    c0, gy, gx = background
    img = c0[None, None, :] + (yy / h)[..., None] * gy[None, None, :] + (xx / w)[..., None] * gx[None, None, :]
    for s in shapes:
        cy, cx = s["pos"] + t * s["vel"]
        ang = s["angle"] + t * s["spin"]
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(ang) + dy * np.sin(ang)
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        if s["kind"] == "ellipse":
            inside = (u / s["a"]) ** 2 + (v / s["b"]) ** 2 <= 1.0
        else:  # box
            inside = (np.abs(u) <= s["a"]) & (np.abs(v) <= s["b"])
        if not inside.any():
            continue
        # Shading: a linear ramp across the object (light from one side), plus optional texture.
        shade = 1.0 + s["ramp"] * (u / s["a"])
        col = s["color"][None, None, :] * shade[..., None]
        if s["texture"] > 0:
            tex = np.sin(u * s["freq"][0] + v * s["freq"][1]) * np.sin(v * s["freq"][2])
            col = col + s["texture"] * tex[..., None]
        img = np.where(inside[..., None], col, img)
    return img.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))


def cartoon_clips(*, count: int = 4, frames: int = 9, size: tuple[int, int] = (144, 256), seed: int = 4321) -> list[Frame]:
    """Computer-animation-like clips: shaded shapes with anti-aliased edges moving over a gradient.

    Args:
      count: number of clips.
      frames: frames per clip.
      size: ``(height, width)``, both even.
      seed: generator seed (same seed, same clips).
    """
    h, w = size
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        background = (rng.uniform(40, 220, 3), rng.uniform(-60, 60, 3), rng.uniform(-60, 60, 3))
        shapes = []
        for _ in range(int(rng.integers(8, 20))):
            scale = rng.uniform(0.03, 0.3) * min(h, w)
            shapes.append({
                "kind": "ellipse" if rng.random() < 0.6 else "box",
                "pos": np.array([rng.uniform(0, h), rng.uniform(0, w)]),
                "vel": rng.normal(0, 1.5, 2),
                "angle": rng.uniform(0, np.pi), "spin": rng.normal(0, 0.02),
                "a": scale, "b": scale * rng.uniform(0.3, 1.0),
                "color": rng.uniform(10, 245, 3), "ramp": rng.uniform(-0.35, 0.35),
                "texture": rng.choice([0.0, 0.0, rng.uniform(4, 20)]),
                "freq": rng.uniform(0.3, 2.5, 3),
            })
        rgb = np.stack([_render_cartoon_frame(shapes, background, float(t), h, w, 3) for t in range(frames)])
        yuv = _rgb_to_yuv(np.clip(rgb, 0, 255))
        y = yuv[..., 0]
        uv = yuv[..., 1:].reshape(frames, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
        planes = [np.clip(np.round(p), 0, 255).astype(np.uint8) for p in (y, uv[..., 0], uv[..., 1])]
        clips.append(make_frame(*planes))
    return clips


def synthetic_clips(name: str, *, frames: int) -> list[Frame] | None:
    """The clips behind a generated-content name (`GENERATED`, `CARTOON`), or None for other names."""
    if name == GENERATED:
        return moving_textures(frames=frames)
    if name == CARTOON:
        return cartoon_clips(frames=frames)
    return None
