"""The fast entry points of Python calls: operator slots (``a + b``), Python numbers created in
the result dtype, the vectorcall op functions/methods, ``x.float()`` and friends, ``x[i]``,
``int(x)``, and the medium-size block cache.

Each fast path is checked against the pybind11 dunder methods it bypasses (``Tensor.__add__``,
which still take the general path), against torch where it is installed, and for its errors.
"""
from __future__ import annotations

import operator
import pickle

import numpy as np
import pytest

import ndcore as nd
from ndcore import _C

DTYPES = ["float32", "float64", "float16", "bfloat16", "uint8", "int8", "int16", "int32", "int64", "bool"]
SCALARS = [2, -3, 0, 2.5, 0.1, 1e10, -1.0 / 3, True, False, 2**40, np.float64(1.5), np.int64(3), np.float32(0.5),
           np.bool_(True)]
# (operator, the dunder it bypasses, the reflected dunder or None)
BINARY = [
    (operator.add, "__add__", "__radd__"), (operator.sub, "__sub__", "__rsub__"),
    (operator.mul, "__mul__", "__rmul__"), (operator.truediv, "__truediv__", "__rtruediv__"),
    (operator.floordiv, "__floordiv__", "__rfloordiv__"), (operator.mod, "__mod__", "__rmod__"),
    (operator.pow, "__pow__", "__rpow__"), (operator.lt, "__lt__", None), (operator.le, "__le__", None),
    (operator.eq, "__eq__", None), (operator.ne, "__ne__", None), (operator.gt, "__gt__", None),
    (operator.ge, "__ge__", None), (operator.and_, "__and__", "__rand__"), (operator.or_, "__or__", "__ror__"),
    (operator.xor, "__xor__", "__rxor__"),
]


def _tensor(dtype, shape=(5,)):
    values = np.array([1, 2, 3, 4, 5][: int(np.prod(shape))] or [1], dtype=np.float64).reshape(shape)
    t = nd.tensor(values.astype(np.float32))
    return t.to(getattr(nd, dtype))


def _outcome(fn):
    try:
        r = fn()
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:
        return ("raises", type(e))
    return r


def _same(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert isinstance(a, tuple) and isinstance(b, tuple), (a, b)
        return
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    x = a.float().numpy() if a.dtype == nd.bfloat16 else a.numpy()
    y = b.float().numpy() if b.dtype == nd.bfloat16 else b.numpy()
    np.testing.assert_array_equal(x, y)  # bit-for-bit: the number's dtype must not change the result


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,dunder,rdunder", BINARY, ids=[b[1] for b in BINARY])
def test_operator_slots_match_general_path(dtype, op, dunder, rdunder):
    for shape in [(5,), ()]:
        x = _tensor(dtype, shape)
        for s in SCALARS:
            fast = _outcome(lambda: op(x, s))
            slow = _outcome(lambda: getattr(nd.Tensor, dunder)(x, s))
            _same(fast, slow)
            if rdunder is not None:
                _same(_outcome(lambda: op(s, x)), _outcome(lambda: getattr(nd.Tensor, rdunder)(x, s)))
        y = _tensor(dtype, shape)
        _same(_outcome(lambda: op(x, y)), _outcome(lambda: getattr(nd.Tensor, dunder)(x, y)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "floor_divide", "remainder", "lt", "eq", "ge"])
def test_scalar_promotion_against_torch(dtype, name):
    torch = pytest.importorskip("torch")
    x = _tensor(dtype)
    tx = torch.from_numpy(x.float().numpy()).to(getattr(torch, dtype))
    # torch refuses `x - True`, nd computes x - 1 (as NumPy does): not a promotion question
    # torch keeps a number in float for 16-bit math: compare only numbers exact in 16 bits
    exact = dtype in ("float16", "bfloat16")
    for s in [2, 2.5, 1e10] + ([] if exact else [-1.0 / 3]) + ([] if name == "sub" else [True]):
        for fn, tfn in [(lambda a, b: getattr(nd, name)(a, b), lambda a, b: getattr(torch, name)(a, b)),
                        (lambda a, b: getattr(a, name)(b), lambda a, b: getattr(a, name)(b))]:
            try:
                want = tfn(tx, s)
            except RuntimeError:  # torch refuses some bool arithmetic nd allows (as NumPy)
                continue
            got = fn(x, s)
            assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (name, dtype, s)
            np.testing.assert_allclose(got.double().numpy(), want.double().numpy(), rtol=1e-2 if dtype in (
                "float16", "bfloat16") else 1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64"])
def test_inplace_variants(dtype):
    for s in [255, 2.5, True, np.float64(3.0)]:
        if dtype == "int64" and isinstance(s, (float, np.floating)):
            continue
        ref = _tensor(dtype)
        nd.Tensor.__imul__(ref, s)
        x = _tensor(dtype)
        x_id = id(x)
        x *= s
        assert id(x) == x_id
        _same(x, ref)
        y = _tensor(dtype)
        assert y.mul_(s) is y
        _same(y, ref)
        v = _tensor(dtype)
        v0 = v._version
        v.add_(s)
        assert v._version == v0 + 1
    if dtype == "int64":
        with pytest.raises(TypeError, match="can't be cast"):
            _tensor(dtype).div_(255)
    else:
        x = _tensor(dtype)
        want = (_tensor(dtype).double() / 255).to(x.dtype)
        np.testing.assert_array_equal(x.div_(255).double().numpy(), want.double().numpy())


def test_operator_errors_name_the_op():
    x = nd.ones(3)
    with pytest.raises(TypeError, match=r"\[bitwise_and\].*float32 and float64"):
        x & 1.5
    with pytest.raises(TypeError, match="unsupported operand"):
        x + "a"
    with pytest.raises(TypeError, match="unsupported operand"):
        [1] - x
    with pytest.raises(ValueError, match=r"\[add\].*not broadcastable"):
        x + nd.ones(4)
    with pytest.raises(ValueError, match="does not fit in int64"):
        x + 2**70
    with pytest.raises(TypeError):
        pow(x, 2, 3)
    assert (x == None) is False  # noqa: E711  (not an operand: identity comparison)
    assert (x != "a") is True


def test_unary_slots():
    x = nd.tensor([-1.5, 2.0])
    assert (-x).tolist() == [1.5, -2.0] and abs(x).tolist() == [1.5, 2.0] and +x is x
    assert nd.Tensor.__neg__(x).tolist() == [1.5, -2.0] and nd.Tensor.__abs__(x).tolist() == [1.5, 2.0]
    assert (-nd.tensor([1, -2])).dtype == nd.int64
    with pytest.raises(TypeError, match="neg"):
        -nd.tensor([True])


def test_subclass_operators():
    class Sub(nd.Tensor):
        pass

    s = Sub(3).fill_(2.0)
    x = nd.ones(3)
    for r in [s + 1, 1 + s, s + x, x + s, s * 2.5, 2.5 / s]:
        assert r.dtype == nd.float32
    np.testing.assert_array_equal((x - s).numpy(), [-1, -1, -1])
    np.testing.assert_array_equal((s < 3).numpy(), [True] * 3)


def test_function_and_method_calls():
    y = nd.arange(6.0)
    np.testing.assert_array_equal(nd.add(y, 2, alpha=3).numpy(), np.arange(6.0) + 6)
    np.testing.assert_array_equal(y.sub(1.5, alpha=2).numpy(), np.arange(6.0) - 3)
    out = nd.empty(6)
    assert nd.mul(y, 2, out=out) is out
    assert y.view(2, 3).shape == (2, 3)
    assert y.reshape(3, 2).sum(axis=0).tolist() == [6.0, 9.0]
    assert y.sum(dim=0, keepdims=False).item() == 15.0
    with pytest.raises(TypeError, match=r"\[add\] received an invalid combination of arguments: got \(Tensor, str\)"):
        nd.add(y, "x")
    with pytest.raises(TypeError, match=r"\[sum\] received an invalid combination"):
        y.sum(bogus=1)
    with pytest.raises(TypeError, match=r"\[add\] received an invalid combination"):
        nd.add(y, y, other=y)
    with pytest.raises(TypeError, match="does not take out="):
        y.add_(1, out=out)
    assert pickle.loads(pickle.dumps(nd.add)) is nd.add
    assert nd.add.__name__ == "add" and "op table" in nd.add.__doc__


def test_dtype_methods():
    x = nd.arange(4, dtype=nd.uint8)
    assert x.byte() is x
    assert x.float().dtype == nd.float32 and x.float(memory_format=None).dtype == nd.float32
    assert x.float(None).tolist() == [0.0, 1.0, 2.0, 3.0]
    for name, dt in [("bool", nd.bool), ("char", nd.int8), ("short", nd.int16), ("int", nd.int32),
                     ("long", nd.int64), ("half", nd.float16), ("bfloat16", nd.bfloat16), ("double", nd.float64)]:
        assert getattr(x, name)().dtype == dt
    with pytest.raises(TypeError, match=r"\[float32\] takes only memory_format"):
        x.float(dtype=nd.float64)
    with pytest.raises(TypeError, match=r"\[float32\] takes only memory_format"):
        x.float(None, None)


def test_getitem_setitem_and_conversions():
    x = nd.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(x[1].numpy(), [4, 5, 6, 7])
    np.testing.assert_array_equal(x[-1].numpy(), [8, 9, 10, 11])
    for bad in [3, -4]:
        with pytest.raises(IndexError):
            x[bad]
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[3]
    with pytest.raises(IndexError, match="too many indices"):
        nd.tensor(1.0)[0]
    assert x[True].shape == (1, 3, 4)
    x[0] = 7
    assert x[0].tolist() == [7.0] * 4
    with pytest.raises(TypeError, match="item deletion"):
        del x[0]
    y = nd.tensor([5])
    assert int(y) == 5 and float(y) == 5.0 and bool(y) and [1, 2, 3, 4, 5, 6][y] == 6
    assert int(nd.tensor(2.7)) == 2
    with pytest.raises(TypeError, match=r"\[int\] only one element"):
        int(nd.ones(2))
    with pytest.raises(ValueError, match=r"\[bool\] Boolean value of Tensor with 2 values is ambiguous"):
        bool(nd.ones(2))
    with pytest.raises(TypeError, match="only integer tensors"):
        [1, 2][nd.tensor(1.0)]


def test_hooks_see_fast_paths():
    seen = []
    x = nd.ones(3, dtype=nd.uint8)
    _C._set_profiler_hooks(lambda name, shapes: seen.append(name), lambda token, name: None)
    try:
        _ = x.float() / 255 - 0.5
        _ = x[0]
        _ = nd.add(x, 1)
    finally:
        _C._set_profiler_hooks(None, None)
    assert seen[:3] == ["_to_copy", "div", "sub"]
    assert "select" in seen and seen[-1] == "add"


@pytest.mark.parametrize("nbytes", [4, 256, 260, 320, 324, 3136, 65536, (1 << 20) - 4, 1 << 20, 3 << 20])
def test_block_cache_sizes(nbytes):
    n = nbytes // 4
    kept = []
    for i in range(4):  # freed blocks come back for the next tensor of the class
        t = nd.full((n,), float(i))
        assert t.numel() == n and float(t.sum()) == float(i) * n
        if i % 2:
            kept.append(t)
    for i, t in zip((1, 3), kept):
        assert float(t.max()) == i and float(t.min()) == i
    _C.empty_cache()


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "floor_divide", "remainder", "pow"])
@pytest.mark.parametrize("number,dtype", [(2.5, nd.float32), (3, nd.int64), (1.5, nd.float64), (2, nd.float32)])
def test_function_forms_take_a_number_first(name, number, dtype):
    """torch.mul(0.5, x), torch.pow(2, x): a Python number as the first operand beside a tensor,
    with the tensor's dtype deciding the result (the number is a wrapped number)."""
    x = np.array([1, 2, 4]).astype({nd.float32: np.float32, nd.int64: np.int64, nd.float64: np.float64}[dtype])
    got = getattr(nd, name)(number, nd.tensor(x))
    ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
           "floor_divide": np.floor_divide, "remainder": np.remainder, "pow": np.power}[name](number, x)
    want = nd.float32 if name == "div" and dtype == nd.int64 else dtype
    assert got.dtype == want
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6)
    with pytest.raises(TypeError, match=rf"\[{name}\]"):
        getattr(nd, name)(number, number)
