"""Every differentiable row of the op table: autograd's gradient vs finite differences in
float64 (gradcheck), a subset of second derivatives (gradgradcheck), and torch's gradients
where torch is installed."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndgrad
from ndcore.testing import OPDB

GRAD_KINDS = {"unary", "binary", "elementwise", "composite"}
# ops whose derivative is zero or undefined almost everywhere, or whose inputs need care
SKIP_CHECK = {"sign", "floor", "ceil", "round", "trunc", "frac", "fill_", "zero_", "_copy_from", "_to_copy",
              "clone", "where", "nan_to_num", "remainder", "fmod", "copysign", "stack", "count_nonzero"}
UNARY = [op for op in OPDB if op.kind == "unary" and op.differentiable and op.name not in SKIP_CHECK]
BINARY = [op for op in OPDB if op.kind == "binary" and op.differentiable and op.name not in SKIP_CHECK]


def _input(op, rng, shape, domain=None):
    lo, hi = domain or op.domain
    a = rng.uniform(lo, hi, size=shape)
    return nd.tensor(a, dtype=nd.float64, requires_grad=True)


@pytest.mark.parametrize("op", UNARY, ids=lambda o: o.name)
def test_unary_gradcheck(op):
    rng = np.random.default_rng(0)
    x = _input(op, rng, (3, 4))
    assert ndgrad.gradcheck(op.fn, (x,))


@pytest.mark.parametrize("op", BINARY, ids=lambda o: o.name)
def test_binary_gradcheck_with_broadcasting(op):
    rng = np.random.default_rng(1)
    a = _input(op, rng, (3, 4))
    b = _input(op, rng, (4,), op.other_domain)
    if op.name in ("maximum", "minimum"):
        b = nd.tensor(b.detach().numpy() + 0.37, dtype=nd.float64, requires_grad=True)  # no ties
    assert ndgrad.gradcheck(op.fn, (a, b))


@pytest.mark.parametrize("name", ["exp", "sin", "tanh", "sigmoid", "log", "sqrt", "mul", "div", "pow", "matmul"])
def test_second_derivatives(name):
    rng = np.random.default_rng(2)
    x = nd.tensor(rng.uniform(0.5, 2.0, size=(3, 3)), dtype=nd.float64, requires_grad=True)
    y = nd.tensor(rng.uniform(0.5, 2.0, size=(3, 3)), dtype=nd.float64, requires_grad=True)
    fn = getattr(nd, name)
    if name in ("mul", "div", "pow", "matmul"):
        assert ndgrad.gradgradcheck(fn, (x, y))
    else:
        assert ndgrad.gradgradcheck(fn, (x,))


REDUCTIONS = [
    ("sum_all", lambda x: x.sum()), ("sum_dim", lambda x: x.sum(1)), ("sum_keep", lambda x: x.sum((0, 2), keepdim=True)),
    ("mean", lambda x: x.mean(-1)), ("prod_dim", lambda x: x.prod(1)), ("prod_all", lambda x: x.prod()),
    ("amax", lambda x: x.amax(1)), ("amin_keep", lambda x: x.amin(0, keepdim=True)), ("max_all", lambda x: x.max()),
    ("max_dim", lambda x: x.max(2).values), ("min_dim_keep", lambda x: x.min(1, keepdim=True).values),
    ("cumsum", lambda x: x.cumsum(1)), ("cumprod", lambda x: x.cumprod(2)), ("var", lambda x: x.var(1)),
    ("std", lambda x: x.std()), ("logsumexp", lambda x: x.logsumexp(1)), ("norm", lambda x: x.norm()),
    ("softmax", lambda x: x.softmax(-1)), ("log_softmax", lambda x: x.log_softmax(0)),
]


@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_gradcheck(name, fn):
    rng = np.random.default_rng(3)
    x = nd.tensor(rng.permutation(24).reshape(2, 3, 4) / 10 + 0.5, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(fn, (x,))


VIEWS = [
    ("reshape", lambda x: x.reshape(4, 6)), ("view", lambda x: x.view(-1)), ("permute", lambda x: x.permute(2, 0, 1)),
    ("transpose", lambda x: x.transpose(0, 2)), ("T", lambda x: x.T), ("expand", lambda x: x[:, :1].expand(2, 5, 4)),
    ("squeeze_unsqueeze", lambda x: x.unsqueeze(1).squeeze(1)), ("slice", lambda x: x[:, 1:, ::2]),
    ("select", lambda x: x[1, :, 2]), ("diagonal", lambda x: x.diagonal(0, 1, 2)), ("unfold", lambda x: x.unfold(2, 2, 1)),
    ("as_strided", lambda x: x.as_strided((3, 3), (2, 1), 1)), ("flip", lambda x: x.flip([0, 2])),
    ("cat", lambda x: nd.cat([x, x * 2], 1)), ("stack", lambda x: nd.stack([x, x.sin()])),
    ("index_int_tensor", lambda x: x[nd.tensor([1, 0, 1])]), ("index_mask", lambda x: x[x > 1.0]),
    ("index_mixed", lambda x: x[:, nd.tensor([2, 0])]), ("gather", lambda x: x.gather(2, nd.tensor([[[0, 3], [1, 1], [2, 0]]] * 2))),
    ("index_select", lambda x: x.index_select(1, nd.tensor([2, 0, 2]))), ("diag", lambda x: x[0].diag()),
    ("tril", lambda x: x[0].tril()), ("masked_fill", lambda x: x.masked_fill(x > 1.5, 0.0)),
    ("where", lambda x: nd.where(x > 1.0, x, x * x)), ("clamp", lambda x: x.clamp(min=0.9, max=2.0)),
    ("addmm", lambda x: nd.addmm(x[0, :, :3], x[1], x[0].T[:, :3] * 1.0)),
    ("matmul_batched", lambda x: x @ x.transpose(1, 2)), ("matmul_vec", lambda x: x @ x[0, 0]),
    ("to_copy", lambda x: x.to(nd.float32).to(nd.float64)),
]


@pytest.mark.parametrize("name,fn", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_and_index_gradcheck(name, fn):
    rng = np.random.default_rng(4)
    x = nd.tensor(rng.permutation(24).reshape(2, 3, 4) / 10 + 0.55, dtype=nd.float64, requires_grad=True)
    if name == "to_copy":  # a float32 round trip needs a step far above float32's resolution
        assert ndgrad.gradcheck(fn, (x,), eps=1e-2, atol=1e-3)
    else:
        assert ndgrad.gradcheck(fn, (x,))


def test_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a, b, c = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)

    def run(lib, A, B, C):
        h = lib.matmul(A, B).sigmoid() * C + 1
        return h.log().sum(1).max() + (A[1:, ::2] ** 2).mean() + A.T.reshape(-1)[3] + h.softmax(0)[0, 1]

    ours = [nd.tensor(v, requires_grad=True) for v in (a, b, c)]
    theirs = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in (a, b, c)]
    y, ty = run(nd, *ours), run(torch, *theirs)
    y.backward()
    ty.backward()
    np.testing.assert_allclose(float(y), float(ty), rtol=1e-5)
    for x, t in zip(ours, theirs):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-6)


def _spd(x):
    return x @ x.mT + 3 * nd.eye(x.shape[-1], dtype=x.dtype)


LINALG = [
    ("inv", lambda a, b: nd.linalg.inv(a)),
    ("solve", lambda a, b: nd.linalg.solve(a, b)),
    ("solve_vector", lambda a, b: nd.linalg.solve(a, b[:, 0])),
    ("solve_right", lambda a, b: nd.linalg.solve(a, b.mT, left=False)),
    ("det", lambda a, b: nd.linalg.det(a)),
    ("slogdet", lambda a, b: nd.linalg.slogdet(a).logabsdet),
    ("cholesky", lambda a, b: nd.linalg.cholesky(_spd(a))),
    ("cholesky_upper", lambda a, b: nd.linalg.cholesky(_spd(a), upper=True)),
    ("qr", lambda a, b: sum(t.sum() for t in nd.linalg.qr(a)) + (nd.linalg.qr(a).Q ** 2).sum()),
    ("svd_invariant", lambda a, b: _svd_invariant(a)),
    ("svd_tall", lambda a, b: _svd_invariant(nd.cat([a, b.mT], 0), full=False)),
    ("svdvals", lambda a, b: nd.linalg.svdvals(a)),
    ("eigh", lambda a, b: _eigh_invariant(a)),
    ("eigvalsh", lambda a, b: nd.linalg.eigvalsh(a + a.mT)),
    ("repeat", lambda a, b: a.repeat(2, 1, 3)),
]


def _svd_invariant(a, full=True):
    U, S, Vh = nd.linalg.svd(a, full_matrices=full)
    k = S.shape[-1]
    w = nd.arange(float(U.shape[0] * U.shape[0]), dtype=a.dtype).reshape(U.shape[0], U.shape[0])
    return S.sum() + ((U[:, :k] @ U[:, :k].mT) * w).sum() + (Vh[:k].mT @ Vh[:k] * w[:k, :k].sin()).sum()


def _eigh_invariant(a):
    w, V = nd.linalg.eigh(a + a.mT)
    return w.sum() + (V[:, :1] @ V[:, :1].mT).sum()


@pytest.mark.parametrize("name,fn", LINALG, ids=[n for n, _ in LINALG])
def test_linalg_gradcheck(name, fn):
    rng = np.random.default_rng(6)
    a = nd.tensor(rng.standard_normal((3, 3)) + 3 * np.eye(3), dtype=nd.float64, requires_grad=True)
    b = nd.tensor(rng.standard_normal((3, 2)), dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(fn, (a, b))
