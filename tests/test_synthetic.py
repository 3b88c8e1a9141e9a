"""Generated training content (jaxcodec.io.synthetic): reproducible, 4:2:0, moving."""

import numpy as np
import pytest

from jaxcodec.io.synthetic import CARTOON, GENERATED, cartoon_clips, moving_textures, synthetic_clips


def test_cartoon_clips_shape_and_seed():
    a = cartoon_clips(count=2, frames=3, size=(48, 64), seed=5)
    b = cartoon_clips(count=2, frames=3, size=(48, 64), seed=5)
    c = cartoon_clips(count=2, frames=3, size=(48, 64), seed=6)
    assert len(a) == 2
    for f in a:
        assert f.y.shape == (3, 48, 64) and f.u.shape == (3, 24, 32) and f.v.shape == (3, 24, 32)
        assert f.y.dtype == np.uint8
        # objects move: consecutive frames differ, but not everywhere (flat background stays)
        d = np.abs(f.y[1].astype(int) - f.y[0])
        assert 0 < np.count_nonzero(d) < d.size
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.y, y.y)
        np.testing.assert_array_equal(x.v, y.v)
    assert any(not np.array_equal(x.y, y.y) for x, y in zip(a, c))


@pytest.mark.parametrize("name", [GENERATED, CARTOON])
def test_synthetic_names(name):
    clips = synthetic_clips(name, frames=2)
    assert clips and all(c.y.shape[0] == 2 for c in clips)


def test_unknown_name_is_not_synthetic():
    assert synthetic_clips("carphone", frames=2) is None


def test_moving_textures_pan():
    (f,) = moving_textures(count=1, frames=3, size=32, seed=0)
    assert f.y.shape == (3, 32, 32)
