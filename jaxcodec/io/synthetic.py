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
* `still_pans`: natural photographs that the scikit-image wheel ships (grass, gravel, brick,
  a cat, coffee, an astronaut, a rocket, a motorcycle, a camera man), each filmed by a virtual
  camera panning at a sub-pixel speed over a zoomed-out view: real texture statistics (the
  fur and grass that the held-out clip is made of), synthetic motion.

All return stacked uint8 4:2:0 `Frame` s, ``(T, H, W)``.
"""

from __future__ import annotations

import numpy as np

from jaxcodec.frame import Frame, make_frame

GENERATED = "generated"
"""Clip name that trainers expand to `moving_textures` (6 clips, 128x128)."""
CARTOON = "cartoon"
"""Clip name that trainers expand to `cartoon_clips` (4 clips, 256x144)."""
CARTOON_HD = "cartoon_hd"
"""Clip name that trainers expand to `cartoon_clips` at 512x288 (`CARTOON_HD_CLIPS` clips, another
seed): the same kind of computer animation with shapes four times the area in samples, so that
edges and shading gradients span as many samples as in 720p content, where 256x144 clips and
the QCIF camera clip pack detail far more densely."""
CARTOON_HD_CLIPS = 8
CARTOON_HD2 = "cartoon_hd2"
"""Clip name that trainers expand to `CARTOON_HD_CLIPS` more `cartoon_clips` at 640x360 (a third
seed): a scale between `CARTOON_HD` and 720p, and new shapes, kept apart from `CARTOON_HD` so that
the clips (and cached encodes) of that name never change."""
CARTOON_VAL = "cartoon_val"
"""`CARTOON_VAL_CLIPS` `cartoon_clips` at 640x360 (a fourth seed) that no training config names:
a validation set for choices made after training (a wrapper's residual scaling, `wrappers.strength`)
that must not be made on the clips a network trained on nor on the held-out clip it is reported
on. Write them as Y4M files with ``python -m jaxcodec.io.synthetic cartoon_val -o DIR``."""
CARTOON_VAL_CLIPS = 4
STILLS = "stills"
"""Clip name that trainers expand to `still_pans` (`STILLS_PER_IMAGE` clips per photograph, 256x144)."""
STILLS_PER_IMAGE = 3
MORE_STILLS = "stills2"
"""Clip name that trainers expand to more `still_pans`: new views of `STILL_IMAGES` (another seed)
and `MORE_STILL_IMAGES`, `STILLS_PER_IMAGE` clips per photograph, 256x144. Kept apart from
`STILLS` so that the clips (and cached encodes) of that name never change."""
THIRD_STILLS = "stills3"
"""Clip name that trainers expand to a third set of `still_pans`: new views (a third seed) of
`STILL_IMAGES` and `MORE_STILL_IMAGES`, `STILLS_PER_IMAGE` clips per photograph, 256x144."""
COLOUR_STILLS = "stills_colour"
"""Clip name that trainers expand to `still_pans` of the colour photographs only
(`COLOUR_STILL_IMAGES`), `COLOUR_STILLS_PER_IMAGE` clips per photograph, 256x144 (a fourth
seed). Seven of the 13 photographs of the other sets are greyscale, so their chroma is flat
and a chroma filter learns nothing from them. (A wrapper post filter trained on this set harms
real clips' chroma more, not less: models/wrapper_x264_small.md.)"""
COLOUR_STILLS_PER_IMAGE = 6
SKLEARN_STILLS = "stills_sklearn"
"""Clip name that trainers expand to `still_pans` of `SKLEARN_STILL_IMAGES`, two colour
photographs of outdoor scenes that scikit-learn ships in its wheel, `SKLEARN_STILLS_PER_IMAGE`
clips per photograph, 256x144 (a fifth seed)."""
SKLEARN_STILLS_PER_IMAGE = 9

# scikit-image's bundled photographs (skimage.data names; loaded from the installed wheel, never
# downloaded). Microscopy, astronomy and document images are left out: not camera content.
STILL_IMAGES = ("grass", "gravel", "brick", "chelsea", "coffee", "astronaut", "rocket", "stereo_motorcycle", "camera")
# More camera photographs: three more from scikit-image and matplotlib's sample portrait
# (`grace_hopper`, shipped in matplotlib's wheel under mpl-data/sample_data).
MORE_STILL_IMAGES = ("grace_hopper", "coins", "clock", "moon")
# scikit-learn's sample photographs (sklearn.datasets.load_sample_image, shipped in its wheel).
SKLEARN_STILL_IMAGES = ("china", "flower")
COLOUR_STILL_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "stereo_motorcycle", "grace_hopper")


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


def _rgb_to_420(rgb: np.ndarray) -> Frame:
    """Float RGB ``(T, H, W, 3)`` in [0, 255] -> uint8 4:2:0 `Frame` (chroma: 2x2 box average)."""
    t, h, w, _ = rgb.shape
    yuv = _rgb_to_yuv(np.clip(rgb, 0, 255))
    uv = yuv[..., 1:].reshape(t, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
    planes = [np.clip(np.round(p), 0, 255).astype(np.uint8) for p in (yuv[..., 0], uv[..., 0], uv[..., 1])]
    return make_frame(*planes)


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
        clips.append(_rgb_to_420(rgb))
    return clips


def _load_still(name: str) -> np.ndarray:
    """Float RGB ``(H, W, 3)`` of a scikit-image, matplotlib or scikit-learn sample photograph (grey
    images on all channels)."""
    from jaxcodec.errors import ConfigError

    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(matplotlib.image.imread(f, format="jpg"), np.float64)[..., :3]
    if name in SKLEARN_STILL_IMAGES:
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as exc:  # an extra (pip install -e '.[train]'); say so instead of a traceback
            raise ConfigError(f"the '{SKLEARN_STILLS}' training clips need scikit-learn "
                              "(pip install -e '.[train]')") from exc
        return np.asarray(load_sample_image(f"{name}.jpg"), np.float64)[..., :3]
    try:
        import skimage.data
    except ImportError as exc:  # a dependency; say so instead of a traceback
        raise ConfigError("the 'stills' training clips need scikit-image (pip install scikit-image)") from exc
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo pairs: the left view
        img = img[0]
    img = np.asarray(img, np.float64)
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]


def still_pans(*, frames: int = 9, size: tuple[int, int] = (144, 256), images: tuple[str, ...] = STILL_IMAGES,
               per_image: int = 1, seed: int = 2468) -> list[Frame]:
    """``per_image`` panning clips per photograph in ``images`` (image-major order).

    Each clip samples the photograph on a grid zoomed out by a random factor in [1, 2] (so the
    detail per pixel resembles a high-resolution camera's), moving by a random sub-pixel velocity
    of up to 2.5 pixels per frame in the output grid. Sampling is cubic spline after a Gaussian
    anti-alias prefilter matched to the zoom.

    Args:
      frames: frames per clip.
      size: ``(height, width)``, both even.
      images: `skimage.data` names.
      per_image: clips per photograph, each with its own zoom, window and velocity.
      seed: generator seed (same seed, same clips).
    """

    h, w = size
    rng = np.random.default_rng(seed)
    clips = []
    for name in images:
        img = _load_still(name)
        for _ in range(per_image):
            clips.append(_pan(img, name, rng, frames, h, w))
    return clips


def _pan(img: np.ndarray, name: str, rng: np.random.Generator, frames: int, h: int, w: int) -> Frame:
    """One `still_pans` clip of the float RGB photograph ``img``."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    ih, iw, _ = img.shape
    vel = rng.uniform(-2.5, 2.5, 2)
    travel = np.abs(vel) * (frames - 1)
    zmax = min(2.0, (ih - 4 - travel[0] * 2) / h, (iw - 4 - travel[1] * 2) / w)
    if zmax < 1.0:  # a trainer config asked for too many frames (or too large a window)
        from jaxcodec.errors import ConfigError

        raise ConfigError(f"still photograph {name!r} ({iw}x{ih}) is too small for a {w}x{h} pan of {frames} "
                          "frames; use fewer frames")
    zoom = rng.uniform(1.0, zmax)
    sigma = 0.5 * np.sqrt(max(zoom**2 - 1.0, 0.0))  # anti-alias: fill up to the new Nyquist
    img = np.stack([gaussian_filter(img[..., c], sigma) for c in range(3)], -1) if sigma > 0 else img
    span = np.array([h, w]) * zoom + travel * zoom
    y0 = rng.uniform(1, ih - 2 - span[0])
    x0 = rng.uniform(1, iw - 2 - span[1])
    if vel[0] < 0:
        y0 += travel[0] * zoom
    if vel[1] < 0:
        x0 += travel[1] * zoom
    yy, xx = np.meshgrid(np.arange(h) * zoom, np.arange(w) * zoom, indexing="ij")
    rgb = []
    for t in range(frames):
        coords = [y0 + yy + vel[0] * zoom * t, x0 + xx + vel[1] * zoom * t]
        rgb.append(np.stack([map_coordinates(img[..., c], coords, order=3, mode="nearest") for c in range(3)], -1))
    return _rgb_to_420(np.stack(rgb))


def synthetic_clips(name: str, *, frames: int) -> list[Frame] | None:
    """The clips behind a generated-content name (`GENERATED`, `CARTOON`, `CARTOON_HD`, `CARTOON_HD2`,
    `CARTOON_VAL`, `STILLS`, `MORE_STILLS`, `THIRD_STILLS`, `COLOUR_STILLS`, `SKLEARN_STILLS`), or None."""
    if name == GENERATED:
        return moving_textures(frames=frames)
    if name == CARTOON:
        return cartoon_clips(frames=frames)
    if name == CARTOON_HD:
        return cartoon_clips(count=CARTOON_HD_CLIPS, frames=frames, size=(288, 512), seed=8642)
    if name == CARTOON_HD2:
        return cartoon_clips(count=CARTOON_HD_CLIPS, frames=frames, size=(360, 640), seed=75319)
    if name == CARTOON_VAL:
        return cartoon_clips(count=CARTOON_VAL_CLIPS, frames=frames, size=(360, 640), seed=20261202)
    if name == STILLS:
        return still_pans(frames=frames, per_image=STILLS_PER_IMAGE)
    if name == MORE_STILLS:
        return still_pans(frames=frames, images=STILL_IMAGES + MORE_STILL_IMAGES, per_image=STILLS_PER_IMAGE, seed=97531)
    if name == THIRD_STILLS:
        return still_pans(frames=frames, images=STILL_IMAGES + MORE_STILL_IMAGES, per_image=STILLS_PER_IMAGE, seed=24680)
    if name == COLOUR_STILLS:
        return still_pans(frames=frames, images=COLOUR_STILL_IMAGES, per_image=COLOUR_STILLS_PER_IMAGE, seed=13579)
    if name == SKLEARN_STILLS:
        return still_pans(frames=frames, images=SKLEARN_STILL_IMAGES, per_image=SKLEARN_STILLS_PER_IMAGE, seed=86420)
    return None


def write_clips(name: str, out_dir, *, frames: int = 30, fps: int = 25) -> list:
    """Write the clips of generated-content ``name`` as ``out_dir/<name>_<i>.y4m`` (so that every
    ``--clips`` option, which takes Y4M paths, can use them); returns the paths."""
    from pathlib import Path

    from jaxcodec.errors import InputError
    from jaxcodec.io.y4m import write_y4m

    clips = synthetic_clips(name, frames=frames)
    if clips is None:
        raise InputError(f"no generated content named {name!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}_{i}.y4m" for i in range(len(clips))]
    for path, clip in zip(paths, clips):
        write_y4m(path, clip, fps)
    return paths


def main(argv=None) -> int:
    import argparse
    import sys

    from jaxcodec.errors import InputError

    parser = argparse.ArgumentParser(prog="python -m jaxcodec.io.synthetic",
                                     description="write a generated-content set as Y4M files")
    parser.add_argument("name", help="generated-content name, e.g. cartoon_val")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    try:
        for path in write_clips(args.name, args.out, frames=args.frames):
            print(path)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
