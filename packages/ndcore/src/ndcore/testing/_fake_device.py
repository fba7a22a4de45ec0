"""A test-only device backed by NumPy, proving that a device plugs into ndcore's registry
without ndcore knowing it (ndcuda does the same with CuPy). Memory is NumPy byte buffers;
each op of a small subset runs as the NumPy function of the same meaning."""
from __future__ import annotations

import numpy as np

import ndcore
from ndcore import _C

_NP_DTYPES = {
    "bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float16": np.float16, "float32": np.float32, "float64": np.float64,
}

_UNARY = {"neg": np.negative, "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
          "sqrt": np.sqrt, "abs": np.abs, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "clone": np.copy,
          "relu": lambda x: np.maximum(x, 0).astype(x.dtype)}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide, "pow": np.power,
           "maximum": np.maximum, "minimum": np.minimum, "eq": np.equal, "lt": np.less, "gt": np.greater,
           "matmul": np.matmul, "mm": np.matmul}
_REDUCE = {"sum": np.sum, "mean": np.mean, "amax": np.amax, "amin": np.amin}


class FakeDevice:
    """The backend object handed to ``ndcore.register_device``."""

    def __init__(self, count: int = 2) -> None:
        self.count = count
        self.buffers: dict[int, np.ndarray] = {}
        self.ops_run: list[str] = []

    # -- registry protocol -------------------------------------------------------------------
    def allocate(self, nbytes: int, index: int):
        buf = np.zeros(max(nbytes, 1), dtype=np.uint8)
        self.buffers[buf.ctypes.data] = buf
        return buf.ctypes.data, buf

    def device_count(self) -> int:
        return self.count

    def copy_from_cpu(self, dst, src) -> None:
        np.copyto(self.view(dst), src.detach().numpy())  # the copy op records grad itself

    def copy_to_cpu(self, dst, src) -> None:
        np.copyto(dst.numpy(), self.view(src))

    def run(self, op, inputs, attrs, outputs, inplace):
        self.ops_run.append(op)
        name = op.split(".")[0]
        if name == "_to_copy":
            x = self.view(inputs[0])
            dtype = attrs["dtype"] or inputs[0].dtype
            target = attrs["device"] or inputs[0].device
            if target.type == "cpu":
                return ndcore.from_numpy(np.array(x)).to(dtype)
            return self.new(np.asarray(x, dtype=_NP_DTYPES[dtype.name]), target)
        if name == "_copy_from":
            src, dst = inputs
            sv = self.view(src) if not src.is_cpu else src.numpy()
            dv = self.view(dst) if not dst.is_cpu else dst.numpy()
            np.copyto(dv, np.broadcast_to(sv, dv.shape), casting="unsafe")
            return dst
        if name in ("fill_", "zero_"):
            self.view(inputs[0])[...] = 0 if name == "zero_" else attrs["value"]
            return inputs[0]
        args = [self.operand(t) for t in inputs]
        if name in _UNARY:
            result = _UNARY[name](args[0])
        elif name in _BINARY:
            result = _BINARY[name](args[0], args[1])
            if name in ("add", "sub") and attrs.get("alpha", 1) != 1:
                result = _BINARY[name](args[0], args[1] * attrs["alpha"])
        elif name == "threshold_backward":  # relu's gradient, so backward through relu runs here too
            result = np.where(args[1] <= attrs["threshold"], 0, args[0]).astype(np.result_type(args[0], args[1]))
        elif name in _REDUCE:
            dim = attrs.get("dim")
            result = np.asarray(_REDUCE[name](args[0], axis=None if dim in (None, []) else tuple(dim),
                                              keepdims=attrs.get("keepdim", False)))
        else:
            raise NotImplementedError(f"[{op}] is not implemented for device 'fake'")
        device = next(t.device for t in inputs if t is not None and not t.is_cpu)
        result = np.asarray(result)
        if outputs:
            np.copyto(self.view(outputs[0]), result, casting="unsafe")
            return outputs[0]
        return self.new(result, device)

    # -- helpers -------------------------------------------------------------------------------
    def view(self, t) -> np.ndarray:
        base = self.buffers[t._storage_ptr()]
        dt = np.dtype(_NP_DTYPES[t.dtype.name])
        return np.ndarray(tuple(t.shape), dtype=dt, buffer=base, offset=t.storage_offset() * dt.itemsize,
                          strides=tuple(s * dt.itemsize for s in t.stride()))

    def operand(self, t):
        if t is None:
            return None
        if t.is_cpu:  # wrapped Python numbers and 0-d CPU tensors may join device math
            return t.item() if t._is_wrapped_number else t.numpy()
        return self.view(t)

    def new(self, arr: np.ndarray, device):
        dtype = getattr(_C, np.dtype(arr.dtype).name if arr.dtype != np.bool_ else "bool")
        out = _C._empty_on_device(list(arr.shape), dtype, device)
        np.copyto(self.view(out), arr)
        return out


_registered: FakeDevice | None = None


def register_fake_device() -> FakeDevice:
    """Registers the 'fake' device type once per process and returns its backend."""
    global _registered
    if _registered is None:
        _registered = FakeDevice()
        ndcore.register_device("fake", _registered)
    return _registered
