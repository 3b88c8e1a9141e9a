"""Generated training content (jaxcodec.io.synthetic): reproducible, 4:2:0, moving."""

import numpy as np
import pytest

from pathlib import Path

from jaxcodec.io.synthetic import (CARTOON, CARTOON_HD, CARTOON_HD2, CARTOON_HD_CLIPS, CARTOON_VAL, CARTOON_VAL_CLIPS,
                                   COLOUR_STILLS, GENERATED, MORE_STILLS, STILLS, THIRD_STILLS, cartoon_clips, main,
                                   moving_textures, still_pans, synthetic_clips, write_clips)
from jaxcodec.io.y4m import read_y4m


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


# The HD animation sets are checked once, below, at one frame: they are the costly ones to render.
@pytest.mark.parametrize("name", [GENERATED, CARTOON, STILLS, MORE_STILLS, THIRD_STILLS, COLOUR_STILLS])
def test_synthetic_names(name):
    clips = synthetic_clips(name, frames=2)
    assert clips and all(c.y.shape[0] == 2 for c in clips)


@pytest.mark.parametrize("name, size, count", [(CARTOON_HD, (288, 512), CARTOON_HD_CLIPS),
                                               (CARTOON_HD2, (360, 640), CARTOON_HD_CLIPS),
                                               (CARTOON_VAL, (360, 640), CARTOON_VAL_CLIPS)])
def test_hd_cartoon_is_larger_and_new(name, size, count):
    (small,), hd = cartoon_clips(count=1, frames=1), synthetic_clips(name, frames=1)
    assert small.y.shape == (1, 144, 256) and len(hd) == count
    assert all(c.y.shape == (1, *size) and c.u.shape == (1, size[0] // 2, size[1] // 2) for c in hd)
    assert len({c.y.tobytes() for c in hd}) == len(hd)


def test_validation_set_is_in_no_training_config():
    configs = Path(__file__).resolve().parent.parent / "configs"
    texts = [p.read_text() for p in configs.glob("*.toml")]
    assert texts and not any(CARTOON_VAL in t for t in texts)


def test_write_clips_round_trip(tmp_path):
    paths = write_clips(CARTOON, tmp_path / "out", frames=2)
    clips = synthetic_clips(CARTOON, frames=2)
    assert [p.name for p in paths] == [f"{CARTOON}_{i}.y4m" for i in range(len(clips))]
    for path, clip in zip(paths, clips):
        back, _ = read_y4m(path)
        for a, b in zip(back.planes, clip.planes):
            np.testing.assert_array_equal(a, b)


def test_write_clips_cli_rejects_unknown_name(tmp_path, capsys):
    assert main(["carphone", "-o", str(tmp_path / "out")]) == 2
    assert "no generated content named 'carphone'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_name_is_not_synthetic():
    assert synthetic_clips("carphone", frames=2) is None


def test_moving_textures_pan():
    (f,) = moving_textures(count=1, frames=3, size=32, seed=0)
    assert f.y.shape == (3, 32, 32)


def test_still_pans_are_natural_moving_and_reproducible():
    a = still_pans(frames=3, size=(32, 48), images=("grass", "chelsea"), seed=3)
    b = still_pans(frames=3, size=(32, 48), images=("grass", "chelsea"), seed=3)
    assert len(a) == 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.y, y.y)
        np.testing.assert_array_equal(x.u, y.u)
    grass, cat = a
    assert grass.y.shape == (3, 32, 48) and grass.u.shape == (3, 16, 24) and grass.y.dtype == np.uint8
    # a grey photograph has neutral chroma; a colour one does not
    assert np.abs(grass.u.astype(int) - 128).max() <= 1 and np.abs(cat.u.astype(int) - 128).max() > 4
    # the camera pans: every frame differs from the last
    for f in a:
        y = f.y.astype(int)
        assert all(np.abs(y[t + 1] - y[t]).mean() > 1 for t in range(2))
    assert grass.y.std() > 20  # texture survives the zoom-out prefilter


def test_still_pans_refuse_a_window_larger_than_the_photo():
    from jaxcodec.errors import ConfigError

    # a user error (frames in a trainer config), so the CLI prints one line, not a traceback
    with pytest.raises(ConfigError, match="too small"):
        still_pans(frames=2, size=(600, 800), images=("coffee",))
    with pytest.raises(ConfigError, match="fewer frames"):
        still_pans(frames=400, images=("coffee",))


def test_still_pans_per_image_gives_distinct_views():
    one = still_pans(frames=2, size=(32, 48), images=("gravel", "coffee"), seed=7)
    two = still_pans(frames=2, size=(32, 48), images=("gravel", "coffee"), per_image=2, seed=7)
    assert len(two) == 4
    # image-major: the first view of the first photograph is the same draw as with one per image
    np.testing.assert_array_equal(two[0].y, one[0].y)
    assert not np.array_equal(two[0].y, two[1].y) and not np.array_equal(two[2].y, two[3].y)


def test_more_stills_are_new_views_and_new_photographs():
    """`stills2` never repeats a `stills` clip; matplotlib's colour portrait loads like the others."""
    from jaxcodec.io.synthetic import MORE_STILL_IMAGES, STILL_IMAGES, STILLS_PER_IMAGE

    first = synthetic_clips(STILLS, frames=2)
    more = synthetic_clips(MORE_STILLS, frames=2)
    assert len(more) == STILLS_PER_IMAGE * (len(STILL_IMAGES) + len(MORE_STILL_IMAGES))
    assert not any(np.array_equal(a.y, b.y) for a in first for b in more[: len(first)])
    third = synthetic_clips(THIRD_STILLS, frames=2)
    assert len(third) == len(more) and not any(np.array_equal(a.y, b.y) for a in more for b in third)
    colour = synthetic_clips(COLOUR_STILLS, frames=2)
    # every clip of the colour set has chroma to learn from, unlike the greyscale photographs
    assert all(max(np.abs(p.astype(int) - 128).max() for p in (c.u, c.v)) > 16 for c in colour)
    assert not any(np.array_equal(a.y, b.y) for a in third for b in colour)
    (portrait,) = still_pans(frames=2, images=("grace_hopper",), seed=1)
    assert portrait.y.shape == (2, 144, 256) and portrait.y.std() > 5
    assert max(np.abs(p.astype(int) - 128).max() for p in (portrait.u, portrait.v)) > 4


def test_sklearn_stills_are_colour_photographs():
    """`stills_sklearn`: the two photographs scikit-learn ships (the train extra), 256x144 pans."""
    pytest.importorskip("sklearn", reason="the train extra (scikit-learn) is not installed")
    from jaxcodec.io.synthetic import SKLEARN_STILL_IMAGES, SKLEARN_STILLS, SKLEARN_STILLS_PER_IMAGE

    clips = synthetic_clips(SKLEARN_STILLS, frames=2)
    assert len(clips) == SKLEARN_STILLS_PER_IMAGE * len(SKLEARN_STILL_IMAGES)
    assert all(c.y.shape == (2, 144, 256) and c.y.std() > 5 for c in clips)
    assert all(max(np.abs(p.astype(int) - 128).max() for p in (c.u, c.v)) > 16 for c in clips)
    assert len({c.y.tobytes() for c in clips}) == len(clips)  # every view is its own
