"""Elementwise ops of the op table (kinds unary, binary, compare) against their NumPy refs.

Every OPDB row x dtype x sample layout is checked in its function, method and in-place forms;
result dtypes follow torch's promotion rules. Python-scalar operands are checked separately.
"""
from __future__ import annotations

import importlib.util
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing._opdb_gen import ROWS
from ndcore.testing.opdb import FLOAT_DTYPES, to_nd, to_np

HAS_TORCH = importlib.util.find_spec("torch") is not None
ELEMENTWISE = [op for op in OPDB if op.kind in ("unary", "binary", "compare")]
GROUP = {r["name"]: r["dtypes"] for r in ROWS if r["kind"] in ("unary", "binary", "compare")}
# Binary ops whose integer inputs compute in the default float dtype (torch's true division rule).
FLOAT_RESULT_BINARY = {"div", "atan2", "hypot", "copysign"}
# Ops that reject bool inputs by design (torch rejects them too): they must raise a TypeError.
BOOL_REJECTED = {op.name for op in ELEMENTWISE if op.kind == "unary" and GROUP[op.name] == "numeric"} | {
    "sub", "fmod", "remainder", "floor_divide", "pow", "bitwise_left_shift", "bitwise_right_shift"}


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _dtypes(op):
    """The OpInfo's dtypes, with bool exactly where torch accepts it."""
    if op.name in BOOL_REJECTED:
        return tuple(d for d in op.dtypes if d != "bool")
    return op.dtypes if "bool" in op.dtypes else op.dtypes + ("bool",)


def _layouts(op):
    rng = np.random.default_rng(0)
    samples = op.unary_samples(rng, "float32") if op.kind == "unary" else op.binary_samples(rng, "float32")
    return [s[0] for s in samples]


def _sample(op, dtype, layout):
    rng = _rng(op.name, dtype, layout)
    samples = op.unary_samples(rng, dtype) if op.kind == "unary" else op.binary_samples(rng, dtype)
    for name, arrays, view in samples:  # samples are generated lazily: stop at the one wanted
        if name == layout:
            return (arrays,) if op.kind == "unary" else arrays, view
    raise LookupError(layout)


def _is_float(name: str) -> bool:
    return name in FLOAT_DTYPES


def _compute_dtype(op, in_dtypes) -> str:
    promoted = in_dtypes[0]
    for d in in_dtypes[1:]:
        promoted = nd.promote_types(getattr(nd, promoted), getattr(nd, d)).name
    floating = (op.kind == "unary" and GROUP[op.name] == "float") or op.name in FLOAT_RESULT_BINARY
    if floating and not _is_float(promoted):
        return nd.get_default_dtype().name
    return promoted


def _result_dtype(op, in_dtypes) -> str:
    if op.kind == "compare" or GROUP[op.name] == "bool_out":
        return "bool"
    return _compute_dtype(op, in_dtypes)


def _ref_input(arr: np.ndarray, dtype: str, compute: str) -> np.ndarray:
    """The values the kernel sees, in the precision the reference computes in."""
    if dtype == "bfloat16":
        arr = to_np(to_nd(arr, "bfloat16"))
    ref_dtype = "float32" if compute in ("float16", "bfloat16") else compute
    return np.asarray(arr).astype(ref_dtype)


def _int_pow(a, b):
    # NumPy refuses negative integer exponents; torch's integer pow gives 1 ** -n = 1,
    # (-1) ** -n = +-1 and 0 otherwise, wrapping like C on overflow.
    out = np.zeros(np.broadcast(a, b).shape, dtype=np.int64)
    for idx in np.ndindex(out.shape):
        x, e = int(np.broadcast_to(a, out.shape)[idx]), int(np.broadcast_to(b, out.shape)[idx])
        out[idx] = x ** e if e >= 0 else (1 if x == 1 else (-1) ** e if x == -1 else 0)
    return out.astype(a.dtype)


def _reference(op, arrays, in_dtypes):
    compute = _compute_dtype(op, in_dtypes)
    inputs = [_ref_input(a, d, compute) for a, d in zip(arrays, in_dtypes)]
    with np.errstate(all="ignore"):
        if op.name == "pow" and not _is_float(compute):
            return _int_pow(*inputs)
        return np.asarray(op.ref(*inputs))


def _check_result(op, out, expected, result_dtype, shape):
    assert out.dtype == getattr(nd, result_dtype), f"{op.name}: dtype {out.dtype}, expected {result_dtype}"
    assert tuple(out.shape) == tuple(shape)
    actual = to_np(out)
    if _is_float(result_dtype):
        rtol, atol = op.tol(result_dtype)
        np.testing.assert_allclose(actual.astype(expected.dtype), expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(actual, expected.astype(actual.dtype))


CASES = [pytest.param(op, dtype, layout, id=f"{op.name}-{dtype}-{layout}")
         for op in ELEMENTWISE for dtype in _dtypes(op) for layout in _layouts(op)]


@pytest.mark.parametrize(("op", "dtype", "layout"), CASES)
def test_op_matches_ref(op, dtype, layout):
    arrays, view = _sample(op, dtype, layout)
    tensors = view(*[to_nd(a, dtype) for a in arrays])
    tensors = tensors if isinstance(tensors, tuple) else (tensors,)
    in_dtypes = [dtype] * len(tensors)
    result_dtype = _result_dtype(op, in_dtypes)
    # The layouts are nd views (t(), slicing, expand); their values reach NumPy through to_np.
    expected = _reference(op, [to_np(t) for t in tensors], in_dtypes)
    shape = np.broadcast_shapes(*[tuple(t.shape) for t in tensors])

    _check_result(op, op.fn(*tensors), expected, result_dtype, shape)
    if "method" in op.variants:
        _check_result(op, getattr(tensors[0], op.name)(*tensors[1:]), expected, result_dtype, shape)
    if "inplace" in op.variants:
        _check_inplace(op, arrays, view, dtype, layout, expected, result_dtype, shape)


def _check_inplace(op, arrays, view, dtype, layout, expected, result_dtype, shape):
    fresh = view(*[to_nd(a, dtype) for a in arrays])
    fresh = fresh if isinstance(fresh, tuple) else (fresh,)
    # An expanded tensor aliases its own elements; its in-place form is checked on a clone.
    self_ = fresh[0].clone() if layout == "stride0" else fresh[0]
    before = self_._version
    method = getattr(self_, op.name + "_")
    if result_dtype != dtype or tuple(self_.shape) != tuple(shape):
        # torch refuses to write a promoted dtype or a broadcast shape into self.
        snapshot = to_np(self_).copy()
        with pytest.raises((TypeError, ValueError, RuntimeError), match=rf"\[{op.name}_?\]"):
            method(*fresh[1:])
        np.testing.assert_array_equal(to_np(self_), snapshot)
        return
    out = method(*fresh[1:])
    assert out is self_
    assert self_._version > before
    _check_result(op, self_, expected, result_dtype, shape)


@pytest.mark.parametrize("op", [op for op in ELEMENTWISE if op.name in BOOL_REJECTED], ids=lambda op: op.name)
def test_bool_input_rejected(op):
    args = [nd.tensor([True, False])] * (1 if op.kind == "unary" else 2)
    with pytest.raises(TypeError, match=rf"\[{op.name}\]"):
        op.fn(*args)


@pytest.mark.parametrize("op", [op for op in ELEMENTWISE if op.name in ("exp", "neg", "add", "bitwise_and")],
                         ids=lambda op: op.name)
def test_inplace_into_expanded_tensor_raises(op):
    # torch: "more than one element of the written-to tensor refers to a single memory location"
    dtype = "float32" if "float32" in op.dtypes else op.dtypes[-1]
    x = to_nd(op.make(_rng(op.name), (1, 4), dtype), dtype).expand(3, 4)
    args = [] if op.kind == "unary" else [to_nd(op.make(_rng(op.name, 1), (3, 4), dtype, op.other_domain), dtype)]
    with pytest.raises((RuntimeError, ValueError), match=op.name):
        getattr(x, op.name + "_")(*args)


@pytest.mark.parametrize("op", [op for op in ELEMENTWISE if op.kind == "compare"], ids=lambda op: op.name)
@pytest.mark.parametrize("dtype", ["int32", "float32", "bfloat16"])
def test_compare_with_ties(op, dtype):
    rng = _rng(op.name, dtype, "ties")
    a = op.make(rng, (6, 5), dtype)
    b = np.where(rng.random((6, 5)) < 0.5, a, op.make(rng, (6, 5), dtype))
    x, y = to_nd(a, dtype), to_nd(b, dtype)
    expected = op.ref(_ref_input(a, dtype, "float32"), _ref_input(b, dtype, "float32"))
    np.testing.assert_array_equal(to_np(op.fn(x, y)), expected)


PAIRS = [("uint8", "int8"), ("int8", "int16"), ("int32", "int64"), ("bool", "int8"), ("int64", "float16"),
         ("float16", "bfloat16"), ("bfloat16", "float32"), ("float32", "float64"), ("bool", "float64"),
         ("uint8", "bool"), ("int16", "bfloat16")]


@pytest.mark.parametrize(("da", "db"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
@pytest.mark.parametrize("name", ["add", "mul", "maximum", "div", "atan2", "lt"])
def test_mixed_dtype_promotion(name, da, db):
    op = next(o for o in ELEMENTWISE if o.name == name)
    rng = _rng(name, da, db)
    a, b = op.make(rng, (4, 3), da), op.make(rng, (3,), db, op.other_domain)
    out = op.fn(to_nd(a, da), to_nd(b, db))
    result = _result_dtype(op, [da, db])
    compute = _compute_dtype(op, [da, db])
    with np.errstate(all="ignore"):
        expected = np.asarray(op.ref(_ref_input(a, da, compute), _ref_input(b, db, compute)))
    _check_result(op, out, expected, result, (4, 3))


def test_promote_types_table():
    names = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
    expected = {("uint8", "int8"): "int16", ("bool", "uint8"): "uint8", ("int64", "float16"): "float16",
                ("float16", "bfloat16"): "float32", ("int8", "uint8"): "int16", ("bool", "bool"): "bool",
                ("int32", "int64"): "int64", ("bfloat16", "int64"): "bfloat16"}
    for (a, b), want in expected.items():
        assert nd.promote_types(getattr(nd, a), getattr(nd, b)).name == want, (a, b)
    if HAS_TORCH:
        import torch

        for a in names:
            for b in names:
                want = str(torch.promote_types(getattr(torch, a), getattr(torch, b))).removeprefix("torch.")
                assert nd.promote_types(getattr(nd, a), getattr(nd, b)).name == want, (a, b)


# (id, expression over a module with torch's API, expected dtype, expected values)
SCALAR_CASES = [
    ("int_plus_int", lambda m: m.tensor([1, 2]) + 2, "int64", [3, 4]),
    ("float_times_int", lambda m: m.tensor([1.5, 2.0]) * 2, "float32", [3.0, 4.0]),
    ("float_scalar_times_int_tensor", lambda m: 2.5 * m.tensor([1, 2]), "float32", [2.5, 5.0]),
    ("int8_plus_1000_wraps", lambda m: m.tensor([1, 2], dtype=m.int8) + 1000, "int8", [-23, -22]),
    ("bool_plus_int", lambda m: m.tensor([True, False]) + 1, "int64", [2, 1]),
    ("bool_times_float", lambda m: m.tensor([True, False]) * 2.5, "float32", [2.5, 0.0]),
    ("bool_plus_bool_scalar", lambda m: m.tensor([True, False]) + True, "bool", [True, True]),
    ("uint8_plus_int8", lambda m: m.tensor([200], dtype=m.uint8) + m.tensor([-1], dtype=m.int8), "int16", [199]),
    ("float16_plus_float", lambda m: m.tensor([1.0], dtype=m.float16) + 2.5, "float16", [3.5]),
    ("int32_plus_float64_0d", lambda m: m.tensor([1], dtype=m.int32) + m.tensor(0.5, dtype=m.float64), "float64", [1.5]),
    ("int8_plus_int64_0d", lambda m: m.tensor([1], dtype=m.int8) + m.tensor(3), "int8", [4]),
    ("float32_plus_float64_0d", lambda m: m.tensor([1.0]) + m.tensor(0.5, dtype=m.float64), "float32", [1.5]),
    ("rsub_scalar", lambda m: 10 - m.tensor([1, 2], dtype=m.int16), "int16", [9, 8]),
    ("rtruediv_int", lambda m: 1 / m.tensor([2, 4]), "float32", [0.5, 0.25]),
    ("int_truediv_int", lambda m: m.tensor([3, 4]) / 2, "float32", [1.5, 2.0]),
    ("int_floordiv_neg", lambda m: m.tensor([-7, 7]) // 2, "int64", [-4, 3]),
    ("int_mod_neg", lambda m: m.tensor([-7, 7]) % 3, "int64", [2, 1]),
    ("int_pow_scalar", lambda m: m.tensor([2, 3]) ** 2, "int64", [4, 9]),
    ("scalar_rpow", lambda m: 2 ** m.tensor([1, 3]), "int64", [2, 8]),
    ("int_pow_float", lambda m: m.tensor([4, 9]) ** 0.5, "float32", [2.0, 3.0]),
    ("compare_int_float", lambda m: m.tensor([1, 2]) < 1.5, "bool", [True, False]),
    ("uint8_times_neg", lambda m: m.tensor([3], dtype=m.uint8) * -1, "uint8", [253]),
    ("bfloat16_minus_int", lambda m: m.tensor([1.5], dtype=m.bfloat16) - 1, "bfloat16", [0.5]),
]


@pytest.mark.parametrize(("expr", "dtype", "values"), [c[1:] for c in SCALAR_CASES], ids=[c[0] for c in SCALAR_CASES])
def test_python_scalar_operands(expr, dtype, values):
    out = expr(nd)
    assert out.dtype == getattr(nd, dtype)
    assert out.tolist() == values
    if HAS_TORCH:
        import torch

        want = expr(torch)
        assert str(want.dtype) == f"torch.{dtype}"
        assert want.tolist() == values


def test_inplace_scalar_keeps_dtype_and_object():
    x = nd.tensor([1, 2, 3], dtype=nd.int16)
    y = x
    x += 5
    assert x is y and x.dtype == nd.int16 and x.tolist() == [6, 7, 8]
    with pytest.raises((TypeError, RuntimeError), match=r"\[(add|add_)\]"):
        x += 0.5  # torch: result type Float can't be cast to the desired output type Short
    assert x.tolist() == [6, 7, 8]
