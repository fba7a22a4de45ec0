"""mm, addmm, bmm, baddbmm and matmul through every path of csrc/kernels/matmul.cpp (Note [GEMM
threading]): single-threaded products below the split threshold, whole matrices per worker,
column and row pieces per matrix (at and around their thresholds), against NumPy float64 and
torch when importable, over every transpose combination, strided and sliced operands, broadcast
batches, empty dims, float64 and the non-BLAS dtypes. Batched products dealt out whole are
bitwise equal at 1 and 2 threads; a product cut into pieces is repeatable at a fixed thread count
(its edge tiles may round differently from the single-threaded product)."""
from __future__ import annotations

import contextlib
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing.opdb import to_np

# Mirrors kMinSplitWork in matmul.cpp: products of at least this many multiply-adds are split.
SPLIT_WORK = 1 << 21

# (M, K, N) picked to reach each branch of choose_split at 2 threads, batch 1.
SHAPES_2D = [
    (3, 5, 4),  # tiny: inline
    (128, 128, 127),  # just below SPLIT_WORK: inline
    (128, 128, 128),  # exactly SPLIT_WORK: column pieces of 64
    (40, 300, 520),  # column pieces, 16-aligned (260 per thread rounds to 272)
    (60, 400, 101),  # column pieces, 4-aligned (51 rounds to 52), last piece shorter
    (520, 300, 40),  # row pieces
    (101, 400, 60),  # row pieces, 4-aligned
    (14, 12000, 14),  # 7 per thread < two tiles: not split
    (16, 8200, 16),  # 8 per thread: split at the smallest allowed piece
    (1, 4096, 1024),  # a row vector times a matrix
    (1024, 4096, 1),  # a matrix times a column
]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


@contextlib.contextmanager
def _threads(n):
    old = nd.get_num_threads()
    nd.set_num_threads(n)
    try:
        yield
    finally:
        nd.set_num_threads(old)


def _operand(arr, trans, dtype="float32", layout="plain"):
    """An nd view of `arr` (the logical matrix) stored transposed, or as a slice of a wider or
    row-strided buffer, so BLAS sees ld > the row length."""
    arr = np.asarray(arr)
    if layout == "wide":  # sliced columns: ld = cols + 7
        buf = np.zeros(arr.shape[:-1] + (arr.shape[-1] + 7,), arr.dtype)
        buf[..., 3:3 + arr.shape[-1]] = arr
        return nd.tensor(buf).to(getattr(nd, dtype))[..., 3:3 + arr.shape[-1]]
    if layout == "rows":  # every other row
        buf = np.zeros(arr.shape[:-2] + (2 * arr.shape[-2], arr.shape[-1]), arr.dtype)
        buf[..., ::2, :] = arr
        return nd.tensor(buf).to(getattr(nd, dtype))[..., ::2, :]
    if layout == "cols":  # every other column: not BLAS-compatible, copied first
        buf = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), arr.dtype)
        buf[..., ::2] = arr
        return nd.tensor(buf).to(getattr(nd, dtype))[..., ::2]
    if trans:
        return nd.tensor(np.ascontiguousarray(np.swapaxes(arr, -1, -2))).to(getattr(nd, dtype)).transpose(-1, -2)
    return nd.tensor(np.ascontiguousarray(arr)).to(getattr(nd, dtype))


def _tol(dtype, k):
    if dtype == "float64":
        return {"rtol": 1e-10, "atol": 1e-10 * max(k, 1)}
    if dtype in ("float16", "bfloat16"):
        return {"rtol": 3e-2, "atol": 3e-2 * np.sqrt(max(k, 1))}
    return {"rtol": 2e-4, "atol": 2e-5 * np.sqrt(max(k, 1))}


def _check(out, ref, dtype, k):
    assert out.dtype == getattr(nd, dtype)
    assert tuple(out.shape) == ref.shape
    np.testing.assert_allclose(to_np(out).astype(np.float64), ref, **_tol(dtype, k))


def _inputs(key, *shapes, dtype="float32"):
    rng = _rng(*key)
    arrs = [rng.standard_normal(s) for s in shapes]
    if dtype in ("float16", "bfloat16"):
        arrs = [a.astype(np.float32) for a in arrs]
    # round to the tested dtype so the float64 reference sees the same inputs
    return [to_np(nd.tensor(a).to(getattr(nd, dtype))).astype(np.float64) for a in arrs]


# ---------------------------------------------------------------- mm and addmm


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shape", SHAPES_2D, ids=lambda s: "x".join(map(str, s)))
def test_mm_paths(shape, ta, tb, threads):
    m, k, n = shape
    a, b = _inputs(("mm", shape, ta, tb), (m, k), (k, n))
    with _threads(threads):
        out = nd.mm(_operand(a, ta), _operand(b, tb))
    _check(out, a @ b, "float32", k)


@pytest.mark.parametrize("layout_a,layout_b", [("wide", "plain"), ("plain", "wide"), ("rows", "rows"),
                                               ("cols", "plain"), ("plain", "cols")])
@pytest.mark.parametrize("shape", [(64, 200, 96), (96, 200, 64), (5, 7, 3)], ids=lambda s: "x".join(map(str, s)))
def test_mm_strided_operands(shape, layout_a, layout_b):
    m, k, n = shape
    a, b = _inputs(("mm_strided", shape, layout_a, layout_b), (m, k), (k, n))
    for threads in (1, 2):
        with _threads(threads):
            _check(nd.mm(_operand(a, False, layout=layout_a), _operand(b, False, layout=layout_b)), a @ b, "float32", k)


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16", "int32"])
@pytest.mark.parametrize("tb", [False, True])
def test_mm_dtypes(dtype, tb):
    m, k, n = (70, 90, 110) if dtype == "float64" else (9, 13, 11)
    if dtype == "int32":
        rng = _rng("mm_int", tb)
        a, b = rng.integers(-5, 5, (m, k)), rng.integers(-5, 5, (k, n))
        out = nd.mm(nd.tensor(a.astype(np.int32)), _operand(b.astype(np.int32), tb, "int32"))
        assert out.dtype == nd.int32
        np.testing.assert_array_equal(out.numpy(), a @ b)
        return
    a, b = _inputs(("mm_dt", dtype, tb), (m, k), (k, n), dtype=dtype)
    for threads in (1, 2):
        with _threads(threads):
            _check(nd.mm(_operand(a, False, dtype), _operand(b, tb, dtype)), a @ b, dtype, k)


BIASES = {"1d": lambda m, n: (n,), "row": lambda m, n: (1, n), "col": lambda m, n: (m, 1), "full": lambda m, n: (m, n),
          "scalar": lambda m, n: ()}


@pytest.mark.parametrize("beta,alpha", [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0), (-1.0, 0.25)])
@pytest.mark.parametrize("bias", list(BIASES))
@pytest.mark.parametrize("shape", [(40, 300, 520), (520, 300, 40), (3, 4, 5)], ids=lambda s: "x".join(map(str, s)))
def test_addmm(shape, bias, beta, alpha):
    m, k, n = shape
    a, b, c = _inputs(("addmm", shape, bias, beta), (m, k), (n, k), BIASES[bias](m, n))
    ref = beta * c + alpha * (a @ b.T) if beta != 0 else alpha * (a @ b.T)
    for threads in (1, 2):
        with _threads(threads):
            cc = nd.tensor(c.astype(np.float32))
            if beta == 0 and c.ndim:  # beta = 0 ignores self, NaN included
                cc = nd.full(tuple(c.shape), float("nan"))
            out = nd.addmm(cc, _operand(a, False), _operand(b.T, True), beta=beta, alpha=alpha)
            _check(out, np.broadcast_to(ref, (m, n)), "float32", k)


@pytest.mark.parametrize("shape", [(1024, 256, 768), (40, 300, 520), (7, 9, 33), (600, 1000, 1)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("alpha", [1.0, -0.5])
def test_addmm_row_bias_is_added_by_the_gemm_bit_for_bit(shape, tb, alpha):
    """A float32 row bias with beta = 1 (nn.Linear) is added as the GEMM stores its first K block
    (nd::sgemm_bias); the bits equal addmm over the same bias materialised as a full matrix, at
    1 and 2 threads, and inf/NaN in the bias reach their columns."""
    m, k, n = shape
    a, b, c = _inputs(("rowbias", shape, tb), (m, k), (k, n), (n,))
    c[: min(n, 3)] = [np.inf, np.nan, -np.inf][: min(n, 3)]
    bias = nd.tensor(c.astype(np.float32))
    for threads in (1, 2):
        with _threads(threads):
            x, w = _operand(a, False), _operand(b, tb)
            fused = nd.addmm(bias, x, w, alpha=alpha)
            full = nd.addmm(bias.expand(m, n).contiguous(), x, w, alpha=alpha)
            np.testing.assert_array_equal(fused.numpy(), full.numpy())
            strided = nd.addmm(nd.tensor(np.repeat(c, 2).astype(np.float32))[::2], x, w, alpha=alpha)
            np.testing.assert_array_equal(strided.numpy(), full.numpy())
            ref = alpha * (a @ b) + c
            finite = np.isfinite(c)
            _check(fused[:, finite], np.broadcast_to(ref, (m, n))[:, finite], "float32", k)


def test_addmm_float64_and_errors():
    a, b, c = _inputs(("addmm64",), (33, 44), (44, 55), (55,), dtype="float64")
    out = nd.addmm(nd.tensor(c), nd.tensor(a), nd.tensor(b), beta=2.0, alpha=-1.0)
    _check(out, 2 * c - a @ b, "float64", 44)
    with pytest.raises(ValueError, match=r"addmm.*cannot broadcast"):
        nd.addmm(nd.zeros(7), nd.zeros(3, 4), nd.zeros(4, 5))
    with pytest.raises(ValueError, match=r"addmm.*cannot be multiplied"):
        nd.addmm(nd.zeros(5), nd.zeros(3, 4), nd.zeros(3, 5))
    with pytest.raises(TypeError, match=r"addmm.*same dtype"):
        nd.addmm(nd.zeros(5), nd.zeros(3, 4), nd.zeros(4, 5, dtype=nd.float64))


@pytest.mark.parametrize("m,k,n", [(0, 4, 5), (3, 0, 5), (3, 4, 0), (0, 0, 0)])
def test_empty_dims(m, k, n):
    a, b = nd.ones(m, k), nd.ones(k, n)
    assert tuple(nd.mm(a, b).shape) == (m, n)
    np.testing.assert_array_equal(nd.mm(a, b).numpy(), np.zeros((m, n)))
    c = nd.full((m, n), 3.0)
    np.testing.assert_array_equal(nd.addmm(c, a, b, beta=0.5).numpy(), np.full((m, n), 1.5))
    np.testing.assert_array_equal(nd.addmm(c, a, b, beta=0.0).numpy(), np.zeros((m, n)))
    assert tuple(nd.bmm(nd.ones(2, m, k), nd.ones(2, k, n)).shape) == (2, m, n)
    assert tuple(nd.bmm(nd.ones(0, m, k), nd.ones(0, k, n)).shape) == (0, m, n)
    assert tuple(nd.matmul(nd.ones(3, 1, m, k), nd.ones(2, k, n)).shape) == (3, 2, m, n)


# ---------------------------------------------------------------- bmm, baddbmm, matmul


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("batch,m,k,n", [
    (9, 40, 120, 50),  # >= 4 per thread: whole matrices per worker
    (2, 100, 300, 120),  # divides evenly
    (3, 100, 300, 120),  # odd batch of large matrices: column pieces
    (3, 130, 300, 60),  # odd batch: row pieces
    (3, 6, 20000, 6),  # odd batch, matrices too narrow to cut: whole matrices
    (5, 4, 3, 2),  # tiny: inline
], ids=str)
@pytest.mark.parametrize("threads", [1, 2])
def test_bmm_paths(batch, m, k, n, ta, tb, threads):
    a, b = _inputs(("bmm", batch, m, k, n, ta, tb), (batch, m, k), (batch, k, n))
    with _threads(threads):
        out = nd.bmm(_operand(a, ta), _operand(b, tb))
    _check(out, a @ b, "float32", k)


def test_bmm_strided_batch_and_float64():
    a, b = _inputs(("bmm_strided",), (4, 30, 20), (4, 20, 25), dtype="float64")
    # every other matrix of a larger batch, with ld > row length
    abuf = np.zeros((8, 30, 27))
    abuf[::2, :, 2:22] = a
    an = nd.tensor(abuf)[::2, :, 2:22]
    _check(nd.bmm(an, _operand(b, True, "float64")), a @ b, "float64", 20)
    with pytest.raises(ValueError, match=r"bmm.*3-D"):
        nd.bmm(nd.zeros(2, 3), nd.zeros(3, 2))


@pytest.mark.parametrize("beta,alpha", [(1.0, 1.0), (0.5, 2.0), (0.0, 3.0)])
def test_baddbmm(beta, alpha):
    a, b, c = _inputs(("baddbmm", beta), (3, 50, 200), (3, 200, 70), (3, 50, 70))
    ref = (beta * c if beta else 0) + alpha * (a @ b)
    out = nd.baddbmm(nd.tensor(c.astype(np.float32)), _operand(a, False), _operand(b, True), beta=beta, alpha=alpha)
    _check(out, ref, "float32", 200)


@pytest.mark.parametrize("sa,sb", [
    ((2, 3, 40, 30), (30, 50)),  # batch folded into rows
    ((40, 30), (2, 3, 30, 50)),  # shared left matrix
    ((2, 1, 40, 30), (3, 30, 50)),  # broadcast on both sides
    ((1, 40, 30), (5, 30, 50)),
    ((30,), (2, 30, 50)),  # vector on the left
    ((2, 40, 30), (30,)),  # vector on the right
    ((30,), (30,)),
    ((40, 30), (30,)),
], ids=str)
@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_broadcast(sa, sb, threads):
    a, b = _inputs(("matmul", sa, sb), sa, sb)
    with _threads(threads):
        out = nd.matmul(_operand(a, False), _operand(b, False))
    _check(out, np.matmul(a, b), "float32", sa[-1])


@pytest.mark.parametrize("sa,sb,la,lb", [
    ((3, 40, 30), (2, 3, 30, 50), "cols", "plain"),  # copied operand with fewer batch dims
    ((40, 30), (2, 3, 30, 50), "cols", "plain"),
    ((2, 1, 40, 30), (3, 30, 50), "plain", "cols"),
    ((2, 3, 40, 30), (3, 30, 50), "rows", "cols"),
], ids=str)
def test_matmul_broadcast_copied_operand(sa, sb, la, lb):
    """Operands BLAS cannot read in place (every other column) are copied once per distinct
    matrix; broadcast batch dims stay broadcast."""
    a, b = _inputs(("matmul_copy", sa, sb), sa, sb)
    for threads in (1, 2):
        with _threads(threads):
            _check(nd.matmul(_operand(a, False, layout=la), _operand(b, False, layout=lb)), np.matmul(a, b), "float32",
                   sa[-1])


def test_matmul_permuted_batch():
    """A batch stored innermost (strides (1, K*B, B)) is no BLAS matrix: copied, then exact."""
    a, b = _inputs(("permuted",), (40, 30, 3), (3, 30, 50))
    an = nd.tensor(a.astype(np.float32)).permute(2, 0, 1)
    ref = np.matmul(a.transpose(2, 0, 1), b)
    for threads in (1, 2):
        with _threads(threads):
            _check(nd.matmul(an, _operand(b, False)), ref, "float32", 30)
            _check(nd.bmm(an, _operand(b, True)), ref, "float32", 30)


def test_matmul_expanded_operand():
    (a,) = _inputs(("expanded",), (1, 40, 30))
    (b,) = _inputs(("expanded_b",), (4, 30, 50))
    an = nd.tensor(a.astype(np.float32)).expand(4, 40, 30)
    _check(nd.matmul(an, _operand(b, True)), np.matmul(a, b), "float32", 30)
    _check(nd.bmm(an, _operand(b, False)), np.matmul(a, b), "float32", 30)


@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_attention_views(threads):
    """q @ k^T and p @ v on head views of one fused projection: batch dims that do not collapse
    to one stride, matrices transposed or with ld > row length; no copy needed."""
    B, T, H, C = 2, 24, 4, 32
    (x,) = _inputs(("attn",), (B, T, 3 * C))
    xn = nd.tensor(x.astype(np.float32))
    q, k, v = (xn[:, :, i * C:(i + 1) * C].reshape(B, T, H, C // H).transpose(1, 2) for i in range(3))
    qa, ka, va = (x[:, :, i * C:(i + 1) * C].reshape(B, T, H, C // H).transpose(0, 2, 1, 3) for i in range(3))
    with _threads(threads):
        s = nd.matmul(q, k.transpose(-2, -1))
        _check(s, qa @ ka.transpose(0, 1, 3, 2), "float32", C // H)
        _check(nd.matmul(s, v), (qa @ ka.transpose(0, 1, 3, 2)) @ va, "float32", T)
        _check(nd.matmul(s.transpose(-2, -1), q), (qa @ ka.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2) @ qa,
               "float32", T)


def test_matmul_errors():
    with pytest.raises(ValueError, match=r"matmul.*cannot be multiplied"):
        nd.matmul(nd.zeros(2, 3, 4), nd.zeros(5, 6))
    with pytest.raises(ValueError, match=r"matmul"):
        nd.matmul(nd.zeros(2, 3, 4), nd.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"mm.*cannot be multiplied"):
        nd.mm(nd.zeros(2, 3), nd.zeros(4, 5))


# ---------------------------------------------------------------- determinism and torch


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(8, 64, 64, 64), (2, 100, 300, 120), (9, 40, 120, 50)], ids=str)
def test_batched_bitwise_equal_across_threads(shape, dtype):
    bs, m, k, n = shape
    a, b = _inputs(("bit", shape), (bs, m, k), (bs, k, n), dtype=dtype)
    an, bn = _operand(a, True, dtype), _operand(b, False, dtype)
    with _threads(1):
        one = nd.bmm(an, bn).numpy()
    with _threads(2):
        two = nd.bmm(an, bn).numpy()
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("shape", [(40, 300, 520), (520, 300, 40), (64, 576, 3136), (3, 100, 300, 120)], ids=str)
def test_split_repeatable(shape):
    """Pieces are cut the same way every call: same inputs, same bits, at 2 threads."""
    lead, (m, k, n) = shape[:-3], shape[-3:]
    a, b = _inputs(("rep", shape), lead + (m, k), lead + (k, n))
    an, bn = _operand(a, False), _operand(b, True)
    f = nd.mm if len(shape) == 3 else nd.bmm
    with _threads(2):
        first = f(an, bn).numpy()
        for _ in range(3):
            np.testing.assert_array_equal(f(an, bn).numpy(), first)
    with _threads(1):
        _check(f(an, bn), a @ b, "float32", k)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_against_torch(ta, tb):
    torch = pytest.importorskip("torch")
    a, b, c = _inputs(("torch", ta, tb), (80, 256), (256, 1024), (1024,))
    ta_ = torch.from_numpy(a.astype(np.float32))
    tb_ = torch.from_numpy(b.astype(np.float32))
    expect = torch.addmm(torch.from_numpy(c.astype(np.float32)), ta_, tb_, beta=0.5, alpha=2.0).numpy()
    out = nd.addmm(nd.tensor(c.astype(np.float32)), _operand(a, ta), _operand(b, tb), beta=0.5, alpha=2.0)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-4, atol=1e-3)
    x, y = _inputs(("torch_bmm", ta), (2, 4, 20, 64), (2, 4, 64, 20))
    expect = torch.matmul(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))).numpy()
    np.testing.assert_allclose(nd.matmul(_operand(x, ta), _operand(y, tb)).numpy(), expect, rtol=1e-4, atol=1e-4)
