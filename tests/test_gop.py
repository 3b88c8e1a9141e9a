"""GOP plans: coding order, references and DPB release lists are consistent for every config."""

import pytest

from jaxcodec.codec.gop import plan_gop
from jaxcodec.config import load_coding_config


def _check_plan(plan, n, cfg):
    assert sorted(s.poc for s in plan) == list(range(n))
    decoded, dpb = set(), set()
    for s in plan:
        for r in s.refs_l0 + s.refs_l1:
            assert r in dpb, f"POC {s.poc} references {r}, not in the DPB"
        assert len(s.refs_l0) <= cfg.num_refs and len(s.refs_l1) <= cfg.num_refs
        assert (s.frame_type == "I") == (not s.refs_l0)
        assert 0 <= s.qp <= 51 and 0 <= s.temporal_layer <= 4
        decoded.add(s.poc)
        dpb.add(s.poc)
        for r in s.release:
            dpb.discard(r)
    assert not dpb, "every picture leaves the DPB by the end"


@pytest.mark.parametrize("name", ["ai", "ld", "ra", "ra_single_intra"])
@pytest.mark.parametrize("n", [1, 2, 5, 9, 17, 33, 40])
def test_plans_are_consistent(name, n):
    cfg = load_coding_config(name, qp=32)
    _check_plan(plan_gop(n, cfg), n, cfg)


def test_ai_all_intra_display_order():
    plan = plan_gop(5, load_coding_config("ai"))
    assert [s.poc for s in plan] == list(range(5)) and all(s.frame_type == "I" for s in plan)


def test_ld_references_past_only():
    cfg = load_coding_config("ld")
    plan = plan_gop(12, cfg)
    assert [s.poc for s in plan] == list(range(12))
    for s in plan[1:]:
        assert s.frame_type == "B" and max(s.refs_l0 + s.refs_l1) < s.poc
        # the previous picture, then the most recent GOP anchors (HM's LD structure)
        anchors = [p for p in range(s.poc - 2, -1, -1) if p % cfg.gop_size == 0]
        assert s.refs_l0 == s.refs_l1 == tuple([s.poc - 1] + anchors)[: cfg.num_refs]
    by_poc = {s.poc: s for s in plan}
    assert by_poc[7].refs_l0 == (6, 4) and by_poc[9].refs_l0 == (8, 4) and by_poc[2].refs_l0 == (1, 0)


def test_ra_hierarchy_gop8():
    cfg = load_coding_config("ra", qp=32)
    plan = plan_gop(17, cfg)
    assert [s.poc for s in plan[:9]] == [0, 8, 4, 2, 1, 3, 6, 5, 7]
    layers = {s.poc: s.temporal_layer for s in plan}
    assert layers[8] == 0 and layers[4] == 1 and layers[2] == 2 and layers[1] == 3
    by_poc = {s.poc: s for s in plan}
    assert by_poc[4].refs_l0[0] == 0 and by_poc[4].refs_l1[0] == 8  # closest past / future
    assert by_poc[4].qp == 32 + cfg.qp_offsets[1]


def test_ra_intra_period_and_single_intra():
    cfg = load_coding_config("ra", qp=30, gop_size=8, intra_period=16)
    intra = [s.poc for s in plan_gop(40, cfg) if s.frame_type == "I"]
    assert intra == [0, 16, 32]
    single = load_coding_config("ra_single_intra")
    assert [s.poc for s in plan_gop(40, single) if s.frame_type == "I"] == [0]
    g16 = load_coding_config("ra", gop_size=16, intra_period=32)
    assert [s.poc for s in plan_gop(17, g16)[:3]] == [0, 16, 8]
