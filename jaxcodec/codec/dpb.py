"""Decoded picture buffer views for one B picture (H.265 8.3.2 / 8.3.4, simplified).

The DPB itself is a plain ``{poc: (y, u, v)}`` dict owned by the encoder/decoder driver (no
global state). For a picture with RefPicList0/1 given as POCs, `reference_slots` builds the
fixed-shape stacks the kernels read: ``2 * num_refs`` slots (unique POCs, padded by repeating
the last) and ``ref_list (2, num_refs)`` slot indices (padded the same way), so jitted code
compiles once per frame size whatever the lists hold.
"""

from __future__ import annotations

import numpy as np


def reference_slots(dpb: dict, refs_l0, refs_l1, num_refs: int):
    """Returns ``(refs_y, refs_u, refs_v)`` stacks, ``ref_list (2, num_refs)`` int32 and
    ``ref_ids (2, num_refs)`` (POC of each list entry, for deblocking's picture identity)."""
    unique = list(dict.fromkeys(tuple(refs_l0) + tuple(refs_l1)))
    slots = unique + [unique[-1]] * (2 * num_refs - len(unique))
    stacks = tuple(np.stack([np.asarray(dpb[p][c]) for p in slots]) for c in range(3))
    ref_list = np.zeros((2, num_refs), np.int32)
    ref_ids = np.zeros((2, num_refs), np.int32)
    for lst, refs in enumerate((refs_l0, refs_l1)):
        refs = list(refs) + [refs[-1]] * (num_refs - len(refs))
        ref_list[lst] = [unique.index(p) for p in refs]
        ref_ids[lst] = refs
    return stacks, ref_list, ref_ids
