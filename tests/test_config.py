import pytest

from jaxcodec.config import CodingConfig, load_coding_config
from jaxcodec.errors import ConfigError


@pytest.mark.parametrize("name", ["ai", "ld", "ra", "ra_single_intra"])
def test_shipped_configs_load(name):
    cfg = load_coding_config(name)
    assert cfg.name == name
    assert cfg.gop_structure in ("ai", "ld", "ra")


def test_single_intra_has_no_intra_period():
    assert load_coding_config("ra_single_intra").intra_period == -1


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\nqpp = 30\n')
    with pytest.raises(ConfigError, match="unknown key 'qpp'.*did you mean 'qp'"):
        load_coding_config(p)


def test_unknown_config_name_lists_known():
    with pytest.raises(ConfigError, match="unknown config 'nope'.*ra"):
        load_coding_config("nope")


def test_bad_values_rejected():
    with pytest.raises(ConfigError, match="qp"):
        CodingConfig(qp=60)
    with pytest.raises(ConfigError, match="must be an integer"):
        load_coding_config("ra", qp="high")
    with pytest.raises(ConfigError, match="dyadic"):
        CodingConfig(gop_structure="ra", gop_size=6)
    for bad in ((0, 0), (0, 1, 2, 3, 4), (0, 20), ()):
        with pytest.raises(ConfigError, match="nnlf_params needs"):
            CodingConfig(nnlf_params=bad)
    with pytest.raises(ConfigError, match="single nnlf_params entry must be 0"):
        CodingConfig(nnlf_params=(3,))
    for bad in ((8,), (3, 1), (1, 16), (8, 1, 1), (0, 1)):
        with pytest.raises(ConfigError, match="nnlf_ensemble needs"):
            CodingConfig(nnlf_ensemble=bad)


def test_overrides_apply_and_none_is_ignored():
    cfg = load_coding_config("ld", qp=27, search_range=None)
    assert cfg.qp == 27 and cfg.search_range == CodingConfig().search_range


def test_defaults_sit_between_dataclass_and_file(tmp_path):
    # The encoder CLI's own defaults (nnlf on) apply only where the config file is silent.
    assert load_coding_config("ld", defaults={"nnlf": True}).nnlf
    assert not load_coding_config("ld").nnlf
    off = tmp_path / "off.toml"
    off.write_text('gop_structure = "ld"\nnnlf = false\n')
    assert not load_coding_config(off, defaults={"nnlf": True}).nnlf
    assert load_coding_config(off, defaults={"nnlf": False}, nnlf=True).nnlf
    with pytest.raises(ConfigError, match="nnlff"):
        load_coding_config("ld", defaults={"nnlff": True})
