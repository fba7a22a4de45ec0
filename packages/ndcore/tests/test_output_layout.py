"""Layout of fresh elementwise outputs (Note [Output layout] in csrc/kernels/loops.h).

An elementwise op allocates its output with the memory layout its inputs agree on, by torch's
TensorIterator rule: same-shape inputs that are all contiguous, channels-last or dense with one
stride vector give that layout; otherwise dims are ordered by the inputs' strides (broadcast dims
ignored, the first input that tells two dims apart decides) and row-major is the fallback. Each
case builds the same strided views in nd and torch and checks strides and values; a seeded sweep
of random layouts covers the combinations the table does not name.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ndcore as nd

DT = {"float32": (nd.float32, torch.float32), "float64": (nd.float64, torch.float64),
      "int64": (nd.int64, torch.int64), "int32": (nd.int32, torch.int32), "bool": (nd.bool, torch.bool),
      "float16": (nd.float16, torch.float16), "uint8": (nd.uint8, torch.uint8)}


def _pair(size, stride, dtype="float32", seed=0):
    """The same strided view (size, stride) of one random buffer, in nd and torch."""
    size, stride = tuple(size), tuple(stride)
    extent = 1 + sum((s - 1) * abs(st) for s, st in zip(size, stride)) if all(size) else 1
    rng = np.random.default_rng(seed)
    buf = rng.standard_normal(extent) * 3
    if dtype == "bool":
        buf = buf > 0
    elif dtype in ("int64", "int32", "uint8"):
        buf = np.abs(buf * 10).astype(dtype)
    else:
        buf = buf.astype(dtype)
    ndt, tdt = DT[dtype]
    a = nd.from_numpy(buf.copy()).as_strided(size, stride)
    b = torch.from_numpy(buf.copy()).as_strided(size, stride)
    assert a.dtype == ndt and b.dtype == tdt
    return a, b


def _check(got, want):
    assert tuple(got.shape) == tuple(want.shape)
    assert tuple(got.stride()) == tuple(want.stride()), (tuple(got.stride()), tuple(want.stride()))
    g = got.float().numpy() if got.dtype in (nd.float16, nd.bfloat16) else got.numpy()
    w = want.float().numpy() if want.dtype in (torch.float16, torch.bfloat16) else want.numpy()
    np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-6, atol=1e-6)


# (name, [(size, stride, dtype)...]) for binary ops
BINARY_CASES = [
    ("transposed", [((5, 4), (1, 5)), ((5, 4), (1, 5))]),
    ("transposed_scalar", [((5, 4), (1, 5)), ((), ())]),
    ("scalar_first_transposed", [((), ()), ((5, 4), (1, 5))]),
    ("transposed_vs_contig", [((5, 4), (1, 5)), ((5, 4), (4, 1))]),
    ("contig_vs_transposed", [((5, 4), (4, 1)), ((5, 4), (1, 5))]),
    ("permuted3d", [((3, 4, 5), (1, 15, 3)), ((3, 4, 5), (1, 15, 3))]),
    ("permuted3d_other", [((3, 4, 5), (20, 1, 4)), ((3, 4, 5), (20, 1, 4))]),
    ("channels_last", [((2, 3, 4, 5), (60, 1, 15, 3)), ((2, 3, 4, 5), (60, 1, 15, 3))]),
    ("channels_last_c1", [((2, 1, 4, 5), (20, 1, 5, 1)), ((2, 1, 4, 5), (20, 1, 5, 1))]),
    ("channels_last_bias", [((2, 3, 4, 5), (60, 1, 15, 3)), ((3, 1, 1), (1, 1, 1))]),
    ("channels_last_vs_contig", [((2, 3, 4, 5), (60, 1, 15, 3)), ((2, 3, 4, 5), (60, 20, 5, 1))]),
    ("broadcast_row_transposed", [((5, 4), (1, 5)), ((4,), (1,))]),
    ("broadcast_col_transposed", [((5, 4), (1, 5)), ((5, 1), (1, 1))]),
    ("row_times_col", [((5, 1), (1, 1)), ((1, 4), (4, 1))]),
    ("expanded_both", [((5, 4), (0, 1)), ((5, 4), (1, 0))]),
    ("expanded_vs_transposed", [((5, 4), (0, 1)), ((5, 4), (1, 5))]),
    ("size1_dims", [((3, 1, 4), (1, 1, 3)), ((3, 1, 4), (1, 1, 3))]),
    ("size1_odd_stride", [((3, 1, 4), (4, 100, 1)), ((3, 1, 4), (4, 100, 1))]),
    ("permuted_size1", [((4, 1, 3), (1, 4, 4)), ((4, 1, 3), (1, 4, 4))]),
    ("sliced_transposed", [((5, 4), (2, 10)), ((5, 4), (2, 10))]),
    ("sliced", [((5, 4), (8, 2)), ((5, 4), (8, 2))]),
    ("batched_mT", [((2, 5, 4), (20, 1, 5)), ((2, 5, 4), (20, 1, 5))]),
    ("batched_mT_broadcast", [((2, 5, 4), (20, 1, 5)), ((5, 4), (1, 5))]),
    ("empty_transposed", [((0, 4), (1, 0)), ((0, 4), (1, 0))]),
    ("empty_vs_transposed", [((3, 0), (1, 3)), ((3, 0), (1, 3))]),
    ("zero_d", [((), ()), ((), ())]),
    ("one_d_strided", [((5,), (3,)), ((5,), (1,))]),
    ("promote_transposed_int", [((5, 4), (1, 5), "int64"), ((5, 4), (1, 5), "float32")]),
    ("promote_sliced_transposed", [((5, 4), (2, 10), "float32"), ((5, 4), (1, 5), "float64")]),
    ("promote_expanded", [((5, 4), (0, 1), "int32"), ((5, 4), (1, 5), "float32")]),
    ("promote_half", [((3, 4, 5), (1, 15, 3), "float16"), ((3, 4, 5), (1, 15, 3), "float32")]),
]


@pytest.mark.parametrize("name,specs", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
@pytest.mark.parametrize("op", ["add", "mul", "lt", "maximum"])
def test_binary_layout_matches_torch(name, specs, op):
    pairs = [_pair(s[0], s[1], s[2] if len(s) > 2 else "float32", seed=i) for i, s in enumerate(specs)]
    (a, ta), (b, tb) = pairs
    _check(getattr(nd, op)(a, b), getattr(torch, op)(ta, tb))


UNARY_CASES = [c for c in BINARY_CASES if len(c[1][0]) == 2 or c[1][0][2] == "float32"]


@pytest.mark.parametrize("name,specs", UNARY_CASES, ids=[c[0] for c in UNARY_CASES])
@pytest.mark.parametrize("op", ["exp", "neg", "abs", "isnan", "sigmoid", "tanh"])
def test_unary_layout_matches_torch(name, specs, op):
    a, ta = _pair(specs[0][0], specs[0][1])
    _check(getattr(a, op)(), getattr(ta, op)())


@pytest.mark.parametrize("dtype", ["int64", "bool", "float16"])
def test_unary_cast_keeps_layout(dtype):
    # an integer input of a float op is cast first; torch's .to() keeps a dense input's strides
    # and makes a sliced one dense in the same order
    for size, stride in [((5, 4), (1, 5)), ((5, 4), (2, 10)), ((2, 3, 4, 5), (60, 1, 15, 3)), ((5, 4), (0, 1))]:
        a, ta = _pair(size, stride, dtype)
        _check(a.exp(), ta.exp())
        _check(a.sqrt(), ta.sqrt())
        _check(a.isfinite(), ta.isfinite())


def test_scalar_and_int_ops_keep_layout():
    a, ta = _pair((5, 4), (1, 5), "int64")
    _check(a * 2, ta * 2)
    _check(a.bitwise_not(), ta.bitwise_not())
    _check(a / 2, ta / 2)
    _check(a * 2.5, ta * 2.5)
    f, tf = _pair((5, 4), (1, 5))
    _check(f * 2.5, tf * 2.5)
    _check(2.5 - f, 2.5 - tf)


def test_where_clamp_and_attribute_ops():
    a, ta = _pair((3, 4, 5), (1, 15, 3))
    b, tb = _pair((3, 4, 5), (1, 15, 3), seed=3)
    c, tc = _pair((3, 4, 5), (1, 15, 3), "bool", seed=4)
    _check(nd.where(c, a, b), torch.where(tc, ta, tb))
    _check(nd.where(c, a, 0.0), torch.where(tc, ta, 0.0))
    cc, tcc = _pair((3, 4, 5), (20, 5, 1), "bool", seed=4)  # contiguous condition, first: wins
    _check(nd.where(cc, a, b), torch.where(tcc, ta, tb))
    _check(a.clamp(-1, 1), ta.clamp(-1, 1))
    _check(a.nan_to_num(), ta.nan_to_num())
    _check(nd._C.gelu(a, approximate="none"), torch.nn.functional.gelu(ta))
    _check(nd._C.softplus(a, beta=1.0, threshold=20.0), torch.nn.functional.softplus(ta))
    _check(nd._C.threshold_backward(b, a, threshold=0.0), torch.ops.aten.threshold_backward(tb, ta, 0.0))


def test_explicit_out_and_inplace_keep_their_strides():
    a, ta = _pair((5, 4), (1, 5))
    out = nd.empty((5, 4))
    nd.add(a, a, out=out)
    assert tuple(out.stride()) == (4, 1)
    np.testing.assert_allclose(out.numpy(), (ta + ta).numpy(), rtol=1e-6)
    a.mul_(2)
    assert tuple(a.stride()) == (1, 5)


def test_transposed_result_runs_the_dense_loop_and_chains():
    # the output of one transposed op feeds the next with matching strides; reductions, matmul,
    # reshape and autograd-style consumers see correct values whatever the layout
    m = np.random.default_rng(1).standard_normal((64, 48)).astype(np.float32)
    a, ta = nd.from_numpy(m.copy()).T, torch.from_numpy(m.copy()).T
    r, tr = (a * 2 + 1).exp(), (ta * 2 + 1).exp()
    _check(r, tr)
    np.testing.assert_allclose(r.sum(0).numpy(), tr.sum(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(r.reshape(-1).numpy(), tr.reshape(-1).numpy(), rtol=1e-6)
    np.testing.assert_allclose((r @ a.T).numpy(), (tr @ ta.T).numpy(), rtol=1e-4)
    assert r.contiguous().is_contiguous()
    np.testing.assert_allclose(r.contiguous().view(-1).numpy(), tr.contiguous().view(-1).numpy(), rtol=1e-6)


def _random_view(rng, shape):
    """A random strided view with `shape`: permuted, maybe sliced, maybe broadcast."""
    n = len(shape)
    perm = rng.permutation(n)
    steps = [int(rng.choice([1, 1, 1, 2])) for _ in range(n)]
    full = [shape[d] * steps[d] for d in range(n)]
    stride = [0] * n
    acc = 1
    for d in perm[::-1]:
        stride[d] = acc * steps[d]
        acc *= max(full[d], 1)
    size = list(shape)
    for d in range(n):
        if rng.random() < 0.15:
            stride[d] = 0  # expanded
        elif size[d] == 1 and rng.random() < 0.5:
            stride[d] = int(rng.integers(1, 50))  # a size-1 dim's stride is free
    return tuple(size), tuple(stride)


@pytest.mark.parametrize("seed", range(6))
def test_random_layouts_match_torch(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(2, 5))
        shape = [int(rng.choice([1, 2, 3, 4])) for _ in range(n)]
        sa = _random_view(rng, shape)
        bshape = [1 if rng.random() < 0.3 else s for s in shape][int(rng.integers(0, 2)):]
        sb = _random_view(rng, bshape)
        dta, dtb = rng.choice(["float32", "float32", "float64", "int64"], 2)
        a, ta = _pair(*sa, dta, seed=1)
        b, tb = _pair(*sb, dtb, seed=2)
        _check(a + b, ta + tb)
        _check(b * a, tb * ta)
        _check(a.abs(), ta.abs())
