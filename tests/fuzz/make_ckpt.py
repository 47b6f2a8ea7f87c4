#!/usr/bin/env python3
"""Writes PyTorch-style .ckpt files and unpickler seeds WITHOUT torch (stdlib only).

torch.save writes a zip: <root>/data.pkl (protocol 2 pickle; tensors as
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks) with
storages as persistent ids ('storage', torch.<T>Storage, key, 'cpu', numel)) and
<root>/data/<key> (raw little-endian bytes). Fake modules named like torch's make the
stdlib pickler emit the same opcodes.

  make_ckpt.py ckpt IN.safetensors OUT.ckpt [--ema] [--global-step N] [--fp16]
  make_ckpt.py seeds DIR        (fuzz corpus for fuzz_unpickle)
  make_ckpt.py zipseed OUT.ckpt (a tiny archive with a shared, offset storage)
"""
import collections, io, json, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*a):
    raise RuntimeError("never called")


def _rebuild_parameter(*a):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = utils.__name__
_rebuild_parameter.__module__ = utils.__name__
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
utils._rebuild_parameter = _rebuild_parameter

DTYPES = {"F32": ("FloatStorage", 4), "F16": ("HalfStorage", 2), "BF16": ("BFloat16Storage", 2),
          "F64": ("DoubleStorage", 8), "I64": ("LongStorage", 8), "I32": ("IntStorage", 4)}
for name, _ in DTYPES.values():
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)


class Storage:
    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


class Tensor:
    def __init__(self, storage, offset, shape, stride=None, param=False):
        self.storage, self.offset, self.shape = storage, offset, tuple(shape)
        if stride is None:
            stride, acc = [], 1
            for d in reversed(self.shape):
                stride.insert(0, acc)
                acc *= d
        self.stride, self.param = tuple(stride), param

    def __reduce__(self):
        t = (_rebuild_tensor_v2, (self.storage, self.offset, self.shape, self.stride, False,
                                  collections.OrderedDict()))
        if self.param:
            return (_rebuild_parameter, (FakeInner(t), False, collections.OrderedDict()))
        return t


class FakeInner:
    def __init__(self, r):
        self.r = r

    def __reduce__(self):
        return self.r


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, DTYPES[obj.dtype][0]), obj.key, "cpu", obj.numel)
        return None


def dumps(obj):
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items()}


def f32_to_f16(raw):
    vals = struct.unpack("<%df" % (len(raw) // 4), raw)
    return struct.pack("<%de" % len(vals), *vals)


def write_ckpt(out, tensors, global_step=None, root="archive"):
    """tensors: name -> (dtype, shape, bytes); each gets its own storage."""
    sd = collections.OrderedDict()
    blobs = {}
    for i, (name, (dtype, shape, raw)) in enumerate(sorted(tensors.items())):
        key = str(i)
        st = Storage(dtype, key, len(raw) // DTYPES[dtype][1])
        sd[name] = Tensor(st, 0, shape)
        blobs[key] = raw
    top = {"state_dict": sd}
    if global_step is not None:
        top["global_step"] = global_step
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(root + "/data.pkl", dumps(top))
        for key, raw in blobs.items():
            z.writestr(root + "/data/" + key, raw)


def cmd_ckpt(args):
    src, out = args[0], args[1]
    tensors = read_safetensors(src)
    if "--fp16" in args:
        tensors = {k: ("F16", s, f32_to_f16(r)) if d == "F32" else (d, s, r)
                   for k, (d, s, r) in tensors.items()}
    if "--ema" in args:
        # EMA twins hold the real weights; the plain UNet keys get zeros (diffusers' extract_ema
        # must pick the twins for the result to match).
        for k in [k for k in tensors if k.startswith("model.diffusion_model.")]:
            d, s, r = tensors[k]
            tensors["model_ema." + "".join(k.split(".")[1:])] = (d, s, r)
            tensors[k] = (d, s, bytes(len(r)))
    step = None
    if "--global-step" in args:
        step = int(args[args.index("--global-step") + 1])
    write_ckpt(out, tensors, step)


def cmd_seeds(args):
    import os
    d = args[0]
    os.makedirs(d, exist_ok=True)
    st = Storage("F32", "0", 6)
    seeds = {
        "plain": {"state_dict": collections.OrderedDict(a=Tensor(st, 0, (2, 3)),
                                                         b=Tensor(st, 2, (4,)))},
        "flat": collections.OrderedDict(w=Tensor(Storage("F16", "1", 4), 0, (2, 2))),
        "param": {"state_dict": {"p": Tensor(st, 0, (6,), param=True)}, "global_step": 875000},
        "meta": {"state_dict": {"x": Tensor(st, 1, (1, 5)), "n": 3, "s": "text", "f": 0.5,
                                "l": [1, 2, (3, None, True)]}, "epoch": 12},
        "strided": {"state_dict": {"t": Tensor(st, 0, (2, 3), stride=(1, 2))}},
    }
    for name, obj in seeds.items():
        with open(os.path.join(d, name + ".pkl"), "wb") as f:
            f.write(dumps(obj))
        for proto in (3, 4):
            buf = io.BytesIO()
            Pickler(buf, protocol=proto).dump(obj)
            with open(os.path.join(d, "%s_p%d.pkl" % (name, proto)), "wb") as f:
                f.write(buf.getvalue())


def cmd_zipseed(args):
    """A small .ckpt: two tensors sharing one storage (a view at an offset)."""
    raw = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    st = Storage("F32", "0", 6)
    sd = collections.OrderedDict(a=Tensor(st, 0, (2, 2)), b=Tensor(st, 4, (2,)))
    with zipfile.ZipFile(args[0], "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", dumps({"state_dict": sd, "global_step": 7}))
        z.writestr("archive/data/0", raw)


if __name__ == "__main__":
    {"ckpt": cmd_ckpt, "seeds": cmd_seeds, "zipseed": cmd_zipseed}[sys.argv[1]](sys.argv[2:])
