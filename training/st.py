"""Minimal safetensors reader/writer (the `safetensors` package is not installed).

Format: u64 little-endian header length N, N bytes of JSON (space-padded to a multiple of
8) mapping each name to dtype / shape / data_offsets, then the raw little-endian bytes.
Tensors are written in name order, as safetensors' own writer does.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F32": (torch.float32, np.float32), "F16": (torch.float16, np.float16),
           "I64": (torch.int64, np.int64), "U8": (torch.uint8, np.uint8),
           "I32": (torch.int32, np.int32), "F64": (torch.float64, np.float64)}
_NAMES = {v[0]: k for k, v in _DTYPES.items()}


def save(tensors, path, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        tdt, ndt = _DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        arr = np.frombuffer(base[b:e], dtype=ndt).reshape(info["shape"]).copy()
        out[name] = torch.from_numpy(arr)
    return out
