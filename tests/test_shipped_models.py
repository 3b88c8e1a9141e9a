"""House rule for shipped models: each `models/<name>/` has its model card `models/<name>.md`
and stays under 5 MB."""

from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parent.parent / "models"
SHIPPED = sorted(p for p in MODELS.iterdir() if p.is_dir())


def test_there_are_shipped_models():
    assert SHIPPED


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_model_has_a_card_and_fits_the_budget(model):
    assert (MODELS / f"{model.name}.md").is_file(), f"models/{model.name}.md (model card) is missing"
    size = sum(f.stat().st_size for f in model.rglob("*") if f.is_file())
    assert size < 5 * 2**20, f"models/{model.name} is {size / 2**20:.1f} MB"
