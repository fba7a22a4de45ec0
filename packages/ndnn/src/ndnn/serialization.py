"""``nd.save`` / ``nd.load``: checkpoints in the safetensors layout that never run code on load.

Tensors are safetensors entries (readable by the ``safetensors`` package); the object around
them (dicts, lists, numbers, strings, NumPy arrays, dtypes, modules ...) is JSON in the
header's ``__metadata__["nd.object"]``. Tensors that share storage are stored once and come
back as views of one buffer. Modules and other objects are rebuilt only for allow-listed
classes (every class defined in ndnn, plus those given to ``add_safe_globals`` or
``safe_globals``) with ``cls.__new__(cls)`` and their saved ``__dict__``: no ``__init__``, no
import of a module named in the file, no pickle.
"""
from __future__ import annotations

import base64
import contextlib
import enum
import importlib
import json
import math
import os
import pickle
import sys
import types
import warnings
from collections import OrderedDict

import ndcore
import numpy as np
from ndcore import Tensor

from . import _safetensors as st
from .parameter import Parameter, is_lazy

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals",
           "UnsafeLoadError"]

FORMAT_VERSION = "1"
MAX_DEPTH = 200

_DTYPES = {d.name: d for d in (ndcore.float64, ndcore.float32, ndcore.float16, ndcore.bfloat16, ndcore.int64,
                               ndcore.int32, ndcore.int16, ndcore.int8, ndcore.uint8, ndcore.bool)}
_ND_TO_ST = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
             "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
# Module attributes that hold hooks (callables): never saved, recreated empty by __setstate__
_HOOK_ATTRS = frozenset({
    "_forward_pre_hooks", "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks", "_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook"})


class UnsafeLoadError(pickle.UnpicklingError):
    """Raised by ``load`` for a class or function that is not allowed to be rebuilt."""


# ---- allow-list ------------------------------------------------------------------------------
_safe_list: list = []
_safe_by_name: dict[str, object] = {}


def _dotted(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def add_safe_globals(safe_globals: list) -> None:
    """Allows ``load`` to rebuild instances of these classes (and to return these functions).

    Args:
        safe_globals: Classes/functions, or ``(obj, "module.QualName")`` pairs for objects saved
            under another name.
    """
    for item in safe_globals:
        if isinstance(item, tuple):
            obj, name = item
        else:
            obj, name = item, None
        if not hasattr(obj, "__qualname__"):
            raise TypeError(f"[add_safe_globals] expected classes or functions, got {type(obj).__name__}")
        _safe_list.append(item)
        _safe_by_name[_dotted(obj)] = obj
        if name is not None:
            _safe_by_name[name] = obj


def get_safe_globals() -> list:
    """The user-registered allowed globals (ndnn's own classes are always allowed)."""
    return list(_safe_list)


def clear_safe_globals() -> None:
    """Forgets every ``add_safe_globals`` registration."""
    _safe_list.clear()
    _safe_by_name.clear()


@contextlib.contextmanager
def safe_globals(safe_globals: list):
    """Context manager: ``add_safe_globals(safe_globals)`` for the duration of the block."""
    saved_list, saved_names = list(_safe_list), dict(_safe_by_name)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _safe_list[:] = saved_list
        _safe_by_name.clear()
        _safe_by_name.update(saved_names)


def _resolve(name: str, trusted: bool):
    # name is "module:qualname"; only ndnn's own modules may be imported, others must be registered
    if not isinstance(name, str) or name.count(":") != 1:
        raise ValueError(f"[load] invalid global name {str(name)[:80]!r}")
    module, qualname = name.split(":")
    dotted = f"{module}.{qualname}"
    if dotted in _safe_by_name:
        return _safe_by_name[dotted]
    own = module.split(".")[0] in ("ndnn", "ndcore")
    if own or trusted:
        try:
            obj = importlib.import_module(module) if own else sys.modules.get(module)
        except ImportError:
            obj = None
        for part in qualname.split("."):
            obj = getattr(obj, part, None) if obj is not None and part != "<locals>" else None
        origin = (getattr(obj, "__module__", None) or "").split(".")[0]
        # ndnn's classes and functions, and ndcore's functions (ops); never an ndcore class
        if obj is not None and (trusted or origin == "ndnn" or (origin == "ndcore" and callable(obj)
                                                                  and not isinstance(obj, type))):
            return obj
    short = qualname.rsplit(".", 1)[-1]
    raise UnsafeLoadError(
        f"[load] refusing to rebuild '{dotted}': it is not an allowed global. Classes and functions defined in ndnn "
        f"load by default; if you trust this file, allow yours with nd.serialization.add_safe_globals([{short}]) or "
        f"`with nd.serialization.safe_globals([{short}]): nd.load(...)`. nd.load never imports a module or runs code "
        f"named in the file.")


def _global_name(obj) -> str:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname:
        raise TypeError(f"[save] cannot save {obj!r}: it has no module/qualname to refer to it by")
    return f"{module}:{qualname}"


# ---- tensors to bytes ------------------------------------------------------------------------
def _tensor_array(t: Tensor) -> np.ndarray:
    t = t.detach()
    if not t.is_cpu:
        t = t.cpu()
    t = t.contiguous()
    if t.dtype == ndcore.bfloat16:
        return t.view(ndcore.int16).numpy().view(np.uint16)
    return t.numpy()


def _extent(t: Tensor) -> int:
    return t.storage_offset() + sum((s - 1) * d for s, d in zip(t.shape, t.stride())) + 1


class _Encoder:
    def __init__(self):
        self.entries: OrderedDict = OrderedDict()
        self.records: list[dict] = []
        self.pending: list[tuple[Tensor, str]] = []
        self.tensor_ids: dict[int, int] = {}
        self.obj_ids: dict[int, int] = {}
        self.alive: list = []  # keeps every memoised object alive so ids stay unique
        self.names: set[str] = set()
        self.dropped_hooks = False

    def unique(self, name: str) -> str:
        name = name or "tensor"
        out, i = name, 1
        while out in self.names or out == "__metadata__":
            out, i = f"{name}#{i}", i + 1
        self.names.add(out)
        return out

    def tensor(self, t: Tensor, path) -> dict:
        if id(t) in self.tensor_ids:
            return {"$t": "tensor", "ref": self.tensor_ids[id(t)]}
        if is_lazy(t):
            raise TypeError(f"[save] '{'.'.join(path)}' is an uninitialized parameter; run a forward pass first")
        if t.dtype.name not in _ND_TO_ST:
            raise TypeError(f"[save] '{'.'.join(path)}' has dtype {t.dtype} that has no safetensors equivalent")
        k = len(self.records)
        self.tensor_ids[id(t)] = k
        self.alive.append(t)
        rec = {"dtype": t.dtype.name, "shape": list(t.shape), "device": str(t.device),
               "requires_grad": bool(t.requires_grad)}
        if isinstance(t, Parameter):
            rec["param"] = _global_name(type(t))
        self.records.append(rec)
        self.pending.append((t, ".".join(path)))
        return {"$t": "tensor", "ref": k}

    def finish_tensors(self) -> None:
        # tensors of one storage are written once (the span they cover) and read back as views
        groups: dict = {}
        for k, (t, _) in enumerate(self.pending):
            key = ("solo", k) if t.numel() == 0 else (str(t.device), t._storage_ptr())
            groups.setdefault(key, []).append(k)
        for ks in groups.values():
            ts = [self.pending[k][0] for k in ks]
            lo = min(t.storage_offset() for t in ts)
            hi = max(_extent(t) for t in ts)
            shareable = (len(ks) > 1 and len({t.dtype for t in ts}) == 1
                         and all(d > 0 or s == 1 for t in ts for s, d in zip(t.shape, t.stride()))
                         and all(t.numel() <= hi - lo for t in ts))
            if not shareable:
                for k, t in zip(ks, ts):
                    name = self.unique(self.pending[k][1])
                    self.entries[name] = (_ND_TO_ST[t.dtype.name], tuple(t.shape), _tensor_array(t))
                    self.records[k]["entry"] = name
                continue
            span = ts[0].detach().as_strided((hi - lo,), (1,), lo)
            shape = next((tuple(t.shape) for t in ts if t.is_contiguous() and t.storage_offset() == lo
                          and t.numel() == hi - lo), (hi - lo,))
            name = self.unique(self.pending[ks[0]][1])
            self.entries[name] = (_ND_TO_ST[ts[0].dtype.name], shape, _tensor_array(span).reshape(shape))
            for k, t in zip(ks, ts):
                self.records[k].update(entry=name, view=[t.storage_offset() - lo, list(t.stride())])

    def array(self, a: np.ndarray, path) -> dict:
        if a.dtype.kind not in "biufc" or a.dtype.fields is not None:
            raise TypeError(f"[save] '{'.'.join(path)}': NumPy arrays of dtype {a.dtype} cannot be saved (numbers "
                            f"and bools only)")
        a = np.ascontiguousarray(a if a.dtype.byteorder != ">" else a.astype(a.dtype.newbyteorder("<")))
        name = self.unique(".".join(path))
        code = st.NUMPY_TO_ST.get(a.dtype.str)
        if code is None:  # complex and others: raw bytes, the dtype lives in the object record
            self.entries[name] = ("U8", (a.nbytes,), a.reshape(-1).view(np.uint8))
        else:
            self.entries[name] = (code, a.shape, a)
        return {"$t": "ndarray", "entry": name, "dtype": a.dtype.str, "shape": list(a.shape)}

    def enc(self, obj, path, depth=0):
        if depth > MAX_DEPTH:
            raise ValueError(f"[save] '{'.'.join(path[:8])}...' is nested more than {MAX_DEPTH} levels deep (a "
                             f"reference cycle?)")
        t = type(obj)
        if obj is None or t is bool or t is str or t is int:
            return obj
        if t is float:
            return obj if math.isfinite(obj) else {"$t": "float", "v": repr(obj)}
        if isinstance(obj, Tensor):
            return self.tensor(obj, path)
        if isinstance(obj, np.ndarray):
            return self.array(obj, path)
        if isinstance(obj, np.generic) and obj.dtype.kind in "biufc":
            return {"$t": "npscalar", "dtype": obj.dtype.str, "v": base64.b64encode(obj.tobytes()).decode()}
        if isinstance(obj, ndcore.dtype):
            return {"$t": "dtype", "v": obj.name}
        if isinstance(obj, ndcore.device):
            return {"$t": "device", "v": str(obj)}
        if isinstance(obj, ndcore.Size):
            return {"$t": "size", "v": [int(s) for s in obj]}
        d = depth + 1
        if t is list:
            return [self.enc(v, path + [str(i)], d) for i, v in enumerate(obj)]
        if t is tuple:
            return {"$t": "tuple", "v": [self.enc(v, path + [str(i)], d) for i, v in enumerate(obj)]}
        if t is dict or t is OrderedDict:
            node = {"$t": "dict" if t is dict else "odict",
                    "v": [[self.enc(k, path, d), self.enc(v, path + [str(k)], d)] for k, v in obj.items()]}
            if t is OrderedDict and vars(obj):
                node["attrs"] = self.enc(dict(vars(obj)), path, d)
            return node
        if t is set or t is frozenset:
            return {"$t": t.__name__, "v": [self.enc(v, path, d) for v in obj]}
        if t is bytes or t is bytearray:
            return {"$t": t.__name__, "v": base64.b64encode(obj).decode()}
        if t is complex:
            return {"$t": "complex", "v": [self.enc(obj.real, path, d), self.enc(obj.imag, path, d)]}
        if t is slice:
            return {"$t": "slice", "v": [self.enc(x, path, d) for x in (obj.start, obj.stop, obj.step)]}
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            return {"$t": "global", "name": _global_name(obj)}
        if isinstance(obj, enum.Enum):
            return {"$t": "enum", "cls": _global_name(t), "v": obj.name}
        if isinstance(obj, tuple) and hasattr(t, "_fields"):
            return {"$t": "namedtuple", "cls": _global_name(t), "v": [self.enc(v, path, d) for v in obj]}
        return self.object(obj, path, d)

    def object(self, obj, path, depth):
        if id(obj) in self.obj_ids:
            return {"$t": "ref", "v": self.obj_ids[id(obj)]}
        k = len(self.obj_ids)
        self.obj_ids[id(obj)] = k
        self.alive.append(obj)
        cls = type(obj)
        from .modules.module import Module
        if isinstance(obj, Module):
            state = {}
            for key, value in obj.__dict__.items():
                if key in _HOOK_ATTRS:
                    self.dropped_hooks |= bool(value)
                    continue
                # parameters, buffers and children are named by their attribute path
                state[key] = value
            items = [[key, self.enc(v, path if key in ("_parameters", "_buffers", "_modules") else path + [key],
                                    depth)] for key, v in state.items()]
            return {"$t": "module", "id": k, "cls": _global_name(cls), "v": items}
        if cls.__getstate__ is not object.__getstate__:
            state = obj.__getstate__()
        elif hasattr(obj, "__dict__") and not hasattr(cls, "__slots__"):
            state = obj.__dict__
        else:
            raise TypeError(f"[save] cannot save '{'.'.join(path)}' of type {cls.__module__}.{cls.__qualname__}: it "
                            f"has no __dict__ or __getstate__")
        return {"$t": "object", "id": k, "cls": _global_name(cls), "v": self.enc(state, path, depth)}


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True) -> None:
    """Saves ``obj`` (tensors, state dicts, nested containers, NumPy arrays, whole modules) to ``f``.

    Args:
        obj: The object to save.
        f: A path (str or PathLike) or a binary file object opened for writing.
        pickle_module: Accepted for torch compatibility; unused (nothing is pickled).
        pickle_protocol: Accepted for torch compatibility; unused.
    """
    enc = _Encoder()
    root = enc.enc(obj, [])
    enc.finish_tensors()
    if enc.dropped_hooks:
        warnings.warn("[save] module hooks are not saved (they are code); register them again after loading",
                      stacklevel=2)
    meta = {"format": "nd", "nd.format_version": FORMAT_VERSION,
            "nd.object": json.dumps({"root": root, "tensors": enc.records}, allow_nan=False,
                                    separators=(",", ":"))}
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            st.write(fh, enc.entries, meta)
    else:
        st.write(f, enc.entries, meta)


# ---- load ------------------------------------------------------------------------------------
def _read(f, mmap: bool):
    if mmap:
        path = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", None)
        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise ValueError("[load] mmap=True needs a path or a file object opened from a file on disk")
        size = os.path.getsize(path)
        if size == 0:
            return b"", 0
        return np.memmap(path, dtype=np.uint8, mode="c", shape=(size,)), size
    if isinstance(f, (str, os.PathLike)):
        size = os.path.getsize(f)
        buf = bytearray(size)
        with open(f, "rb") as fh:
            got = fh.readinto(buf)
        return buf, got
    data = f.read()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"[load] expected a path or a binary file object, got {type(f).__name__}")
    buf = bytearray(data)
    return buf, len(buf)


def _map_device(base: Tensor, location: str, map_location) -> Tensor:
    target = location
    if isinstance(map_location, (str, ndcore.device)):
        target = str(map_location)
    elif isinstance(map_location, dict):
        target = str(map_location.get(location, location))
    elif callable(map_location):
        out = map_location(base, location)
        if isinstance(out, Tensor):
            return out
        if out is not None:
            target = str(out)
    elif map_location is not None:
        raise TypeError(f"[load] map_location must be None, a str, a device, a dict or a callable, got "
                        f"{type(map_location).__name__}")
    if target == "cpu":
        return base
    try:
        dev = ndcore.device(target)
    except (ValueError, RuntimeError) as e:
        raise RuntimeError(f"[load] the file holds tensors on '{location}', which this process cannot use ({e}); "
                           f"pass map_location='cpu' (or another registered device)") from None
    return base.to(dev)


class _Decoder:
    def __init__(self, entries, data, data_start, records, map_location, trusted):
        self.entries = {e.name: e for e in entries}
        self.data, self.data_start = data, data_start
        if not isinstance(records, list):
            raise ValueError("[load] invalid file: the tensor table must be a list")
        self.records = records
        self.map_location, self.trusted = map_location, trusted
        self.tensors: dict[int, Tensor] = {}
        self.bases: dict[str, Tensor] = {}
        self.objs: dict[int, object] = {}

    def base(self, name: str, rec_dtype: str, location: str) -> Tensor:
        if name in self.bases:
            return self.bases[name]
        e = self.entries.get(name) if isinstance(name, str) else None
        if e is None:
            raise ValueError(f"[load] invalid file: the object refers to a missing tensor entry {str(name)[:80]!r}")
        if _ND_TO_ST.get(rec_dtype) != e.dtype:
            raise ValueError(f"[load] invalid file: entry {name!r} holds {e.dtype} but the object says {rec_dtype}")
        arr = st.entry_array(self.data, self.data_start, e, False)
        if e.dtype == "BF16":
            t = ndcore.from_numpy(arr.view(np.int16)).view(ndcore.bfloat16)
        else:
            t = ndcore.from_numpy(arr)
        t = _map_device(t, location, self.map_location)
        self.bases[name] = t
        return t

    def tensor(self, k) -> Tensor:
        if type(k) is not int or not 0 <= k < len(self.records):
            raise ValueError(f"[load] invalid file: tensor reference {str(k)[:20]} out of range")
        if k in self.tensors:
            return self.tensors[k]
        rec = self.records[k]
        if not isinstance(rec, dict) or rec.get("dtype") not in _DTYPES:
            raise ValueError(f"[load] invalid file: tensor record {k} is malformed")
        shape = rec.get("shape")
        if not isinstance(shape, list) or len(shape) > st.MAX_DIMS or \
                not all(type(s) is int and 0 <= s <= st.MAX_DIM_SIZE for s in shape):
            raise ValueError(f"[load] invalid file: tensor record {k} has an invalid shape")
        location = rec.get("device", "cpu")
        if not isinstance(location, str):
            raise ValueError(f"[load] invalid file: tensor record {k} has an invalid device")
        base = self.base(rec.get("entry"), rec["dtype"], location)
        n_base = base.numel()
        view = rec.get("view")
        if view is None:
            if math.prod(shape) != n_base:
                raise ValueError(f"[load] invalid file: tensor record {k} has shape {shape} but its entry holds "
                                 f"{n_base} elements")
            t = base.reshape(shape)
        else:
            ok = isinstance(view, list) and len(view) == 2 and type(view[0]) is int and isinstance(view[1], list)
            offset, stride = (view[0], view[1]) if ok else (0, None)
            ok = ok and len(stride) == len(shape) and offset >= 0 and \
                all(type(d) is int and 0 <= d <= st.MAX_DIM_SIZE for d in stride)
            numel = math.prod(shape)
            if not ok or numel > n_base or (numel and offset + sum((s - 1) * d for s, d in zip(shape, stride))
                                            >= n_base):
                raise ValueError(f"[load] invalid file: view of tensor record {k} falls outside its entry")
            t = base.reshape(-1).as_strided(shape, stride, base.storage_offset() + offset)
        requires_grad = rec.get("requires_grad") is True and t.dtype.is_floating_point
        if "param" in rec:
            cls = _resolve(rec["param"], self.trusted)
            if not (isinstance(cls, type) and issubclass(cls, Parameter)):
                raise UnsafeLoadError(f"[load] {rec['param']!r} is not a Parameter class")
            t = cls(t, requires_grad=requires_grad)
        elif requires_grad:
            t = t.detach().requires_grad_(True)
        self.tensors[k] = t
        return t

    def dec(self, node, depth=0):
        if depth > MAX_DEPTH:
            raise ValueError(f"[load] invalid file: the object is nested more than {MAX_DEPTH} levels deep")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        d = depth + 1
        if isinstance(node, list):
            return [self.dec(v, d) for v in node]
        if not isinstance(node, dict):
            raise ValueError("[load] invalid file: malformed object node")
        tag, v = node.get("$t"), node.get("v")
        if tag == "tensor":
            return self.tensor(node.get("ref"))
        if tag in ("dict", "odict"):
            out = (dict if tag == "dict" else OrderedDict)(self.pairs(v, d))
            if tag == "odict" and "attrs" in node:
                attrs = self.dec(node["attrs"], d)
                if not isinstance(attrs, dict) or not all(isinstance(a, str) and a.isidentifier()
                                                          and not a.startswith("__") for a in attrs):
                    raise ValueError("[load] invalid file: malformed OrderedDict attributes")
                for a, val in attrs.items():
                    setattr(out, a, val)
            return out
        if tag == "tuple":
            return tuple(self.dec(x, d) for x in self.seq(v))
        if tag == "float":
            if v not in ("nan", "inf", "-inf"):
                raise ValueError("[load] invalid file: malformed float")
            return float(v)
        if tag == "ndarray":
            return self.ndarray(node)
        if tag == "npscalar":
            dt = self.np_dtype(node.get("dtype"))
            raw = self.b64(v)
            if len(raw) != dt.itemsize:
                raise ValueError("[load] invalid file: malformed NumPy scalar")
            return np.frombuffer(raw, dtype=dt)[0]
        if tag == "dtype":
            if v not in _DTYPES:
                raise ValueError(f"[load] invalid file: unknown dtype {str(v)[:20]!r}")
            return _DTYPES[v]
        if tag == "device":
            if not isinstance(v, str) or len(v) > 64:
                raise ValueError("[load] invalid file: malformed device")
            return ndcore.device(v)
        if tag == "size":
            if not all(type(s) is int for s in self.seq(v)):
                raise ValueError("[load] invalid file: malformed Size")
            return ndcore.Size(v)
        if tag in ("set", "frozenset"):
            return (set if tag == "set" else frozenset)(self.dec(x, d) for x in self.seq(v))
        if tag in ("bytes", "bytearray"):
            return (bytes if tag == "bytes" else bytearray)(self.b64(v))
        if tag == "complex":
            re, im = (self.dec(x, d) for x in self.seq(v, 2))
            return complex(re, im)
        if tag == "slice":
            return slice(*(self.dec(x, d) for x in self.seq(v, 3)))
        if tag == "global":
            return _resolve(node.get("name"), self.trusted)
        if tag == "enum":
            cls = self.cls(node.get("cls"))
            if not issubclass(cls, enum.Enum) or not isinstance(v, str) or v not in cls.__members__:
                raise ValueError("[load] invalid file: malformed enum")
            return cls[v]
        if tag == "namedtuple":
            cls = self.cls(node.get("cls"))
            if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise ValueError(f"[load] invalid file: {cls.__qualname__} is not a namedtuple")
            return cls._make(self.dec(x, d) for x in self.seq(v))
        if tag == "ref":
            if v not in self.objs:
                raise ValueError("[load] invalid file: reference to an unknown object")
            return self.objs[v]
        if tag in ("module", "object"):
            return self.instance(node, tag, d)
        raise ValueError(f"[load] invalid file: unknown object tag {str(tag)[:20]!r}")

    def instance(self, node, tag, depth):
        cls = self.cls(node.get("cls"))
        k = node.get("id")
        if type(k) is not int or k in self.objs:
            raise ValueError("[load] invalid file: malformed object id")
        from .modules.module import Module
        if (tag == "module") != issubclass(cls, Module):
            raise ValueError(f"[load] invalid file: {cls.__qualname__} saved as the wrong kind of object")
        obj = cls.__new__(cls)  # never __init__: nothing but the saved state defines the object
        self.objs[k] = obj
        if tag == "module":
            state = {}
            for pair in self.seq(node.get("v")):
                key, value = self.seq(pair, 2)
                if not isinstance(key, str) or key in _HOOK_ATTRS:
                    raise ValueError("[load] invalid file: malformed module attribute")
                state[key] = self.dec(value, depth)
            for key in ("_parameters", "_buffers", "_modules"):
                if not isinstance(state.get(key), dict):
                    raise ValueError(f"[load] invalid file: module {cls.__qualname__} lacks {key}")
        else:
            state = self.dec(node.get("v"), depth)
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        elif isinstance(state, dict):
            obj.__dict__.update(state)
        else:
            raise ValueError(f"[load] invalid file: the state of {cls.__qualname__} must be a dict")
        return obj

    def cls(self, name):
        cls = _resolve(name, self.trusted)
        if not isinstance(cls, type):
            raise ValueError(f"[load] invalid file: {name!r} is not a class")
        return cls

    def pairs(self, v, depth):
        for pair in self.seq(v):
            key, value = self.seq(pair, 2)
            yield self.dec(key, depth), self.dec(value, depth)

    @staticmethod
    def seq(v, n=None) -> list:
        if not isinstance(v, list) or (n is not None and len(v) != n):
            raise ValueError("[load] invalid file: malformed object node")
        return v

    @staticmethod
    def b64(v) -> bytes:
        try:
            return base64.b64decode(v, validate=True)
        except (TypeError, ValueError):
            raise ValueError("[load] invalid file: malformed base64 data") from None

    @staticmethod
    def np_dtype(s) -> np.dtype:
        try:
            dt = np.dtype(s) if isinstance(s, str) and len(s) <= 8 else None
        except TypeError:
            dt = None
        if dt is None or dt.kind not in "biufc" or dt.fields is not None:
            raise ValueError(f"[load] invalid file: unsupported NumPy dtype {str(s)[:20]!r}")
        return dt

    def ndarray(self, node):
        dt = self.np_dtype(node.get("dtype"))
        shape = self.seq(node.get("shape"))
        e = self.entries.get(node.get("entry")) if isinstance(node.get("entry"), str) else None
        if e is None or len(shape) > st.MAX_DIMS or not all(type(s) is int and 0 <= s <= st.MAX_DIM_SIZE
                                                            for s in shape):
            raise ValueError("[load] invalid file: malformed NumPy array record")
        if math.prod(shape) * dt.itemsize != e.end - e.begin:
            raise ValueError(f"[load] invalid file: NumPy array {e.name!r} does not match its entry's size")
        arr = st.entry_array(self.data, self.data_start, e, True)
        return arr.reshape(-1).view(dt).reshape(shape)


def load(f, map_location=None, pickle_module=None, *, weights_only: bool = True, mmap=None, **pickle_load_args):
    """Loads what ``save`` wrote (or any safetensors file) without running code from the file.

    Args:
        f: A path (str or PathLike) or a binary file object.
        map_location: Where tensors go: None (where they were saved), a device or device string,
            a dict ``{saved location: new location}``, or ``fn(tensor, saved_location)`` returning a
            tensor, a location or None.
        pickle_module: Accepted for torch compatibility; unused.
        weights_only: True (default) rebuilds only ndnn classes and allow-listed globals; False
            also accepts classes of modules already imported in this process (never imports one).
        mmap: Back CPU tensors by a copy-on-write memory map of the file instead of reading it.

    Returns:
        The saved object; a plain safetensors file gives an OrderedDict of tensors.
    """
    data, size = _read(f, bool(mmap))
    entries, metadata, data_start = st.read_header(data, size)
    raw = metadata.get("nd.object")
    if raw is None:  # a safetensors file from elsewhere: its tensors by name
        dec = _Decoder(entries, data, data_start, [], map_location, not weights_only)
        out = OrderedDict()
        for e in sorted(entries, key=lambda e: e.begin):
            rec_dtype = next((n for n, c in _ND_TO_ST.items() if c == e.dtype), None)
            if rec_dtype is None:
                out[e.name] = st.entry_array(data, data_start, e, True)
            else:
                out[e.name] = dec.base(e.name, rec_dtype, "cpu").reshape(list(e.shape))
        return out
    if metadata.get("nd.format_version") != FORMAT_VERSION:
        raise ValueError(f"[load] the file has nd format version {metadata.get('nd.format_version')!r}; this nd "
                         f"reads version {FORMAT_VERSION}")
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ValueError("[load] invalid file: the object JSON is nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"[load] invalid file: the object JSON does not parse ({e})") from None
    if not isinstance(doc, dict) or "root" not in doc:
        raise ValueError("[load] invalid file: the object JSON lacks its root")
    dec = _Decoder(entries, data, data_start, doc.get("tensors"), map_location, not weights_only)
    try:
        return dec.dec(doc["root"])
    except RecursionError:
        raise ValueError("[load] invalid file: the object is nested too deeply") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as e:
        raise ValueError(f"[load] invalid file: malformed object structure ({type(e).__name__}: {e})") from None
