"""Versioned integer-model file; loads with numpy only (no flax, no JAX).

Layout (little endian)::

    magic   8 bytes  b"JXNNINT\\0"
    version u32      FORMAT_VERSION
    hlen    u32      length of the JSON header
    header  hlen     {"act_bits", "outputs", "nodes": [{op, inputs, q, attrs, params:
                      {name: [dtype, shape, offset, nbytes]}}]}
    blob             parameter bytes
    sha256  32 bytes of everything above

Anything wrong (magic, version, checksum, a parameter shape that does not fit the graph,
an accumulator that could leave int32) raises :class:`jaxcodec.errors.ModelError`.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from jaxcodec.errors import ModelError
from runtime.nnint.graph import Graph, Node, validate

MAGIC = b"JXNNINT\0"
FORMAT_VERSION = 1
_DTYPES = ("int8", "int16", "int32", "int64")


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    return v


def _tuplify(v):
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


def pack_file(magic: bytes, version: int, header: dict, payload: bytes) -> bytes:
    """The framing every model file here shares: ``magic | version u32 | header length u32 |
    JSON header | payload | sha256 of everything before it``."""
    head = json.dumps(header, sort_keys=True).encode()
    body = magic + struct.pack("<II", version, len(head)) + head + payload
    return body + hashlib.sha256(body).digest()


def unpack_file(data: bytes, magic: bytes, version: int, *, name: str, what: str) -> tuple[dict, bytes]:
    """Check `pack_file`'s framing (magic, version, checksum, JSON header) and return
    ``(header, payload)``; `ModelError` naming ``name`` and the problem otherwise."""
    if len(data) < len(magic) + 8 + 32 or data[:len(magic)] != magic:
        raise ModelError(f"{name}: not a jaxcodec {what} (bad magic)")
    got, hlen = struct.unpack_from("<II", data, len(magic))
    if got != version:
        raise ModelError(f"{name}: {what} version {got}, this build reads version {version}")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelError(f"{name}: checksum mismatch (file corrupt or truncated)")
    start = len(magic) + 8
    try:
        header = json.loads(body[start:start + hlen])
    except ValueError as e:
        raise ModelError(f"{name}: malformed {what} header ({e})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{name}: malformed {what} header (not an object)")
    return header, body[start + hlen:]


def to_bytes(graph: Graph) -> bytes:
    validate(graph)
    blob = bytearray()
    nodes = []
    for n in graph.nodes:
        params = {}
        for name, arr in n.params.items():
            arr = np.asarray(arr)
            # Smallest integer type that holds the values: int16 weights stay int16 on disk.
            dt = next(d for d in _DTYPES if np.iinfo(d).min <= arr.min(initial=0) and arr.max(initial=0) <= np.iinfo(d).max)
            data = arr.astype(np.dtype(dt).newbyteorder("<")).tobytes()
            params[name] = [dt, list(arr.shape), len(blob), len(data)]
            blob += data
        nodes.append({"op": n.op, "inputs": list(n.inputs), "q": int(n.q),
                      "attrs": {k: _jsonable(v) for k, v in n.attrs.items()}, "params": params})
    header = {"act_bits": graph.act_bits, "outputs": list(graph.outputs), "nodes": nodes}
    return pack_file(MAGIC, FORMAT_VERSION, header, bytes(blob))


def from_bytes(data: bytes, *, name: str = "model") -> Graph:
    header, blob = unpack_file(data, MAGIC, FORMAT_VERSION, name=name, what="integer model")
    try:
        nodes = []
        for k, nd in enumerate(header["nodes"]):
            params = {}
            for pname, (dt, shape, off, nbytes) in nd["params"].items():
                if dt not in _DTYPES or off + nbytes > len(blob):
                    raise ModelError(f"{name}: node {k} parameter {pname!r} out of range")
                arr = np.frombuffer(blob[off:off + nbytes], np.dtype(dt).newbyteorder("<"))
                if arr.size != int(np.prod(shape)):
                    raise ModelError(f"{name}: node {k} parameter {pname!r} has {arr.size} values, shape {shape}")
                params[pname] = arr.reshape(shape).astype(np.int64 if pname == "b" else np.int32)
            nodes.append(Node(nd["op"], tuple(nd["inputs"]), int(nd["q"]),
                              {k2: _tuplify(v) for k2, v in nd["attrs"].items()}, params))
        graph = Graph(tuple(nodes), tuple(header["outputs"]), int(header["act_bits"]))
    except ModelError:
        raise
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{name}: malformed model header ({e})") from None
    try:
        validate(graph)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise ModelError(f"{name}: inconsistent graph ({e!r})") from None
    return graph


def save(graph: Graph, path: str | Path) -> None:
    # Imported here: jaxcodec.io pulls in flax, and loading must not need it.
    from jaxcodec.io import atomic_write_bytes
    atomic_write_bytes(path, to_bytes(graph))


def load(path: str | Path) -> Graph:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return from_bytes(p.read_bytes(), name=str(p))
