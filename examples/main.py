"""The main job, as far as the packages landed so far reach.

Trains the seed's two-layer network (``x.mm(w1).clamp(min=0).mm(w2)``) with autograd
(``loss.backward()`` and the seed's manual SGD through ``.data``) on scikit-learn's bundled 8x8
handwritten digits (real data, no download); runs the seed's Jacobi solver in Python and as a
C++ extension, and differentiates through the extension; prints an op-level profile gathered
through ndcore's dispatcher hook. The seed's MNIST Net with Adam (ndnn, ndoptim), ONNX export
(ndonnx) and Chrome traces (ndprof) join this job as those packages land.
"""
from __future__ import annotations

import collections
import os
import sys
import time

import numpy as np

import nd
import ndcore
import nd.utils.cpp_extension


def load_digits():
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = data.data.astype(np.float32) / 16.0
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (nd.from_numpy(x[:split]), nd.from_numpy(y[:split]), nd.from_numpy(x[split:]), nd.from_numpy(y[split:]))


def train(epochs: int = 30, batch: int = 64, hidden: int = 100, lr: float = 0.05):
    x_train, y_train, x_test, y_test = load_digits()
    n, d_in = x_train.shape
    nd.manual_seed(0)
    w1 = (nd.randn(d_in, hidden) * (2.0 / d_in) ** 0.5).requires_grad_()
    w2 = (nd.randn(hidden, 10) * (1.0 / hidden) ** 0.5).requires_grad_()
    eye = nd.eye(10)
    for epoch in range(epochs):
        perm = nd.randperm(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            x, y = x_train[idx], eye[y_train[idx]]
            y_pred = x.mm(w1).clamp(min=0).mm(w2)
            loss = (y_pred - y).pow(2).sum()
            total += loss.item()
            loss.backward()
            scale = lr / x.shape[0]
            w1.data -= scale * w1.grad.data
            w2.data -= scale * w2.grad.data
            w1.grad.data.zero_()
            w2.grad.data.zero_()
        with nd.no_grad():
            acc = float((x_test.mm(w1).clamp(min=0).mm(w2).argmax(1) == y_test).float().mean())
        bar = "#" * int(30 * (epoch + 1) / epochs)
        print(f"\r[{bar:<30}] epoch {epoch + 1}/{epochs} loss {total / n:.4f} test acc {acc:.3f}", end="", flush=True)
    print()
    return acc


def jacobi_solve(A, b, iters):
    iter_matrix = -A.clone()
    iter_matrix.as_strided((A.size(0),), (A.size(0) + 1,)).zero_()
    iter_matrix /= A.diag().unsqueeze(-1)
    iter_offset = b / A.diag()
    cand = nd.zeros_like(b)
    for _ in range(iters):
        cand = nd.matmul(iter_matrix, cand) + iter_offset
    return cand


class OpProfile:
    """Counts and times every op through ndcore's profiler hook slot."""

    def __init__(self):
        self.stats = collections.defaultdict(lambda: [0, 0.0])

    def __enter__(self):
        ndcore._C._set_profiler_hooks(lambda name, shapes: time.perf_counter(), self._end)
        return self

    def _end(self, t0, name):
        s = self.stats[name]
        s[0] += 1
        s[1] += time.perf_counter() - t0

    def __exit__(self, *exc):
        ndcore._C._set_profiler_hooks(None, None)

    def table(self, top: int = 8) -> str:
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1][1])[:top]
        return "\n".join(f"  {name:<14} {n:>7} calls {t * 1e3:9.2f} ms" for name, (n, t) in rows)


def main() -> int:
    print(f"nd {nd.__version__}: training the seed's two-layer net on sklearn's digits")
    with OpProfile() as prof:
        acc = train()
    print(f"test accuracy {acc:.3f}\nop profile (top by time):\n{prof.table()}")

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jacobi_extension.cpp")
    ext = nd.utils.cpp_extension.load(name="jacobi_ext", sources=[src], extra_cflags=["-O3"])
    nd.manual_seed(1)
    A = nd.randn(64, 64, dtype=nd.float64) + 64 * nd.eye(64, dtype=nd.float64)
    b = nd.randn(64, dtype=nd.float64)
    x_py, x_cpp = jacobi_solve(A, b, 200), ext.jacobi_solve(A, b, 200)
    exact = np.linalg.solve(A.numpy(), b.numpy())
    err = float(np.abs(x_cpp.numpy() - exact).max())
    same = bool((x_py - x_cpp).abs().max() < 1e-12)
    print(f"jacobi_solve: python == C++ extension: {same}; max error vs LAPACK {err:.2e}")
    b.requires_grad_()
    (grad_b,) = nd.autograd.grad(ext.jacobi_solve(A, b, 200).sum(), b)
    grad_err = float(np.abs(grad_b.numpy() - np.linalg.solve(A.numpy().T, np.ones(64))).max())
    print(f"autograd through the C++ extension: |grad - A^-T 1| = {grad_err:.2e}")
    return 0 if acc > 0.9 and same and err < 1e-8 and grad_err < 1e-8 else 1


if __name__ == "__main__":
    sys.exit(main())
