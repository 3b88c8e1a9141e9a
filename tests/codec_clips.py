"""Small generated clips for the codec tests (deterministic, moving content, odd CU padding)."""

import numpy as np

from jaxcodec.frame import Frame


def generated_clip(n: int = 4, height: int = 20, width: int = 36, seed: int = 0, bit_depth: int = 8) -> Frame:
    """Textured pattern translating by (1, 2) samples per frame plus mild noise: the inter
    tools have real motion to find, intra has edges and gradients."""
    rng = np.random.default_rng(seed)
    peak = (1 << bit_depth) - 1
    big_h, big_w = height + 4 * n + 8, width + 4 * n + 8
    yy, xx = np.mgrid[0:big_h, 0:big_w]
    base = 128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 30 * ((xx // 6 + yy // 6) % 2)
    base = base * (peak / 255.0)
    ys, us, vs = [], [], []
    for t in range(n):
        y = base[2 * t:2 * t + height, t:t + width] + rng.normal(0, 2, (height, width))
        ys.append(np.clip(np.round(y), 0, peak))
        c = base[2 * t:2 * t + height:2, t:t + width:2]
        us.append(np.clip(np.round(0.5 * c + peak / 4), 0, peak))
        vs.append(np.clip(np.round(peak - 0.5 * c - peak / 4), 0, peak))
    dt = np.uint8 if bit_depth == 8 else np.uint16
    return Frame(y=np.stack(ys).astype(dt), u=np.stack(us).astype(dt), v=np.stack(vs).astype(dt), bit_depth=bit_depth)
