"""Sparse dense layers (paper 001 IV-C) and a MAC counter.

A dense weight matrix W (C_in x C_out, y = x @ W) is stored per output column as CSR
whose non-zero runs along the input axis are widened to whole aligned blocks of
``align`` (8 or 16) inputs, so each run is a SIMD-friendly multiply-add of a multiple
of ``align`` values; adjacent blocks merge into one run.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from runtime.nnint.graph import Graph, infer_shapes


@dataclasses.dataclass(frozen=True)
class AlignedCSR:
    """Column-major CSR of W: for column j, runs r in row_ptr[j]:row_ptr[j+1] cover inputs
    run_start[r] .. run_start[r] + run_len[r] - 1 with values values[run_off[r]:...]."""

    shape: tuple[int, int]
    align: int
    row_ptr: np.ndarray
    run_start: np.ndarray
    run_len: np.ndarray
    run_off: np.ndarray
    values: np.ndarray

    @property
    def macs(self) -> int:
        return int(self.run_len.sum())

    @property
    def density(self) -> float:
        return self.macs / (self.shape[0] * self.shape[1])


def to_csr(w: np.ndarray, align: int = 8) -> AlignedCSR:
    if align not in (8, 16):
        raise ValueError("align must be 8 or 16")
    cin, cout = w.shape
    row_ptr, starts, lens, offs, vals = [0], [], [], [], []
    off = 0
    nblocks = -(-cin // align)
    for j in range(cout):
        col = w[:, j]
        used = [bool(np.any(col[b * align:(b + 1) * align])) for b in range(nblocks)]
        b = 0
        while b < nblocks:
            if not used[b]:
                b += 1
                continue
            e = b
            while e < nblocks and used[e]:
                e += 1
            s, ln = b * align, min(e * align, cin) - b * align
            starts.append(s)
            lens.append(ln)
            offs.append(off)
            vals.append(col[s:s + ln])
            off += ln
            b = e
        row_ptr.append(len(starts))
    values = np.concatenate(vals) if vals else np.zeros(0, w.dtype)
    i64 = lambda v: np.asarray(v, np.int64)  # noqa: E731
    return AlignedCSR((cin, cout), align, i64(row_ptr), i64(starts), i64(lens), i64(offs), values)


def csr_matmul(x: np.ndarray, m: AlignedCSR) -> np.ndarray:
    """x (N, C_in) @ W by runs, exact in int64 (reference; same result as the dense product)."""
    x = np.asarray(x, np.int64)
    out = np.zeros((x.shape[0], m.shape[1]), np.int64)
    for j in range(m.shape[1]):
        for r in range(m.row_ptr[j], m.row_ptr[j + 1]):
            s, ln, o = m.run_start[r], m.run_len[r], m.run_off[r]
            out[:, j] += x[:, s:s + ln] @ m.values[o:o + ln].astype(np.int64)
    return out


def count_macs(graph: Graph, input_hw: dict[int, tuple[int, int]] | None = None,
               *, align: int = 8) -> dict[str, object]:
    """Per-layer and total MACs (batch 1), dense and with aligned-sparse weights.

    ``input_hw`` gives spatial sizes per input node (defaults: the nodes' shape attrs).
    """
    shapes = infer_shapes(graph, {i: (*hw, graph.nodes[i].attrs["shape"][-1])
                                  for i, hw in (input_hw or {}).items()})
    layers = []
    for i, n in enumerate(graph.nodes):
        if n.op not in ("conv2d", "dense"):
            continue
        w = np.asarray(n.params["w"])
        positions = int(np.prod(shapes[i][:-1]))  # output positions
        w2 = w.reshape(-1, w.shape[-1]) if n.op == "dense" else None
        if n.op == "dense":
            dense = w2.size * positions
            sparse = to_csr(w2, align).macs * positions
        else:
            dense = w.size * positions
            sparse = int(np.count_nonzero(w)) * positions  # conv: no CSR, count non-zeros
        layers.append({"node": i, "op": n.op, "dense": int(dense), "sparse": int(sparse)})
    return {"layers": layers, "dense": sum(x["dense"] for x in layers),
            "sparse": sum(x["sparse"] for x in layers)}
