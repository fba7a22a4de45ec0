"""The main job: the seed's MNIST ``Net`` trained with Adam on real handwritten digits.

No data can be downloaded on a fresh machine, so the default is scikit-learn's bundled 8x8
digits, resized to 28x28 (``nd.datasets.Digits``); MNIST is used instead when its IDX files are
under ``$ND_DATA`` (default ``./data``, torchvision's ``MNIST/raw`` layout). The job shows a
progress bar, reports test accuracy, saves the model with ``nd.save`` (the safe format: no code
runs on load), reloads it and checks it predicts identically, prints an op-level profile
gathered through ndcore's dispatcher hook, and runs the seed's Jacobi solver in Python and as a
C++ extension (differentiating through the extension). ONNX export (ndonnx) and Chrome traces
(ndprof) join when those packages land.
"""
from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
import warnings

import numpy as np

import nd
import nd.nn as nn
import nd.nn.functional as F
import nd.utils.cpp_extension
import ndcore
from nd.utils.data import DataLoader


class Net(nn.Module):
    """The seed's network, verbatim (slides: "ML layers/ops")."""

    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x)


def datasets():
    transform = nd.transforms.Compose([nd.transforms.ToTensor(), nd.transforms.Normalize((0.1307,), (0.3081,))])
    root = os.environ.get("ND_DATA", "data")
    if os.path.isdir(os.path.join(root, "MNIST", "raw")):
        name = "MNIST"
        train = nd.datasets.MNIST(root, train=True, transform=transform)
        test = nd.datasets.MNIST(root, train=False, transform=transform)
    else:
        name = "sklearn digits, 8x8 resized to 28x28"
        train = nd.datasets.Digits(train=True, transform=transform)
        test = nd.datasets.Digits(train=False, transform=transform)
    return name, train, test


def progress(done: int, total: int, text: str) -> None:
    bar = "#" * int(30 * done / total)
    print(f"\r[{bar:<30}] {done}/{total} {text}", end="" if done < total else "\n", flush=True)


def evaluate(model, loader) -> tuple[float, nd.Tensor]:
    model.eval()
    correct, total, preds = 0, 0, []
    with nd.no_grad():
        for data, target in loader:
            pred = model(data).argmax(dim=1)
            preds.append(pred)
            correct += int((pred == target).sum())
            total += len(target)
    return correct / total, nd.cat(preds)


def train(epochs: int, lr: float = 2e-3) -> tuple[nn.Module, float, float, DataLoader, DataLoader]:
    name, train_set, test_set = datasets()
    print(f"data: {name}: {len(train_set)} train / {len(test_set)} test images")
    nd.manual_seed(0)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1000)
    model = Net()
    optimizer = nd.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    steps = epochs * len(train_loader)
    step = 0
    for epoch in range(epochs):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            step += 1
            if step % 5 == 0 or step == steps:
                progress(step, steps, f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f}")
    seconds = time.perf_counter() - start
    acc, _ = evaluate(model, test_loader)
    print(f"trained {epochs} epochs in {seconds:.1f} s; test accuracy {acc:.4f}")
    return model, acc, seconds, train_loader, test_loader


def save_and_reload(model, loader) -> bool:
    _, before = evaluate(model, loader)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.nd")
        nd.save(model, path)
        nd.save(model.state_dict(), os.path.join(tmp, "net_state.nd"))
        # Net is defined in this script, so loading the whole module must allow-list it
        with nd.serialization.safe_globals([Net]):
            reloaded = nd.load(path)
        fresh = Net()
        fresh.load_state_dict(nd.load(os.path.join(tmp, "net_state.nd")))
        size = os.path.getsize(path)
    _, after = evaluate(reloaded, loader)
    _, after_state = evaluate(fresh, loader)
    same = bool((before == after).all()) and bool((before == after_state).all())
    print(f"nd.save -> {size / 1e3:.1f} kB; reloaded model predicts identically: {same}")
    return same


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

    def table(self, top: int = 10) -> str:
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1][1])[:top]
        return "\n".join(f"  {name:<28} {n:>7} calls {t * 1e3:9.2f} ms" for name, (n, t) in rows)


def profile_steps(model, loader) -> None:
    optimizer = nd.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    with OpProfile() as prof:
        for i, (data, target) in enumerate(loader):
            optimizer.zero_grad()
            F.nll_loss(model(data), target).backward()
            optimizer.step()
            if i == 9:
                break
    print(f"op profile of 10 training steps (top by time):\n{prof.table()}")


def extension_demo() -> bool:
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
    return same and err < 1e-8 and grad_err < 1e-8


def main() -> int:
    # the seed calls F.log_softmax(x) without dim=, which warns (as in torch) on every call
    warnings.filterwarnings("ignore", message="Implicit dimension choice")
    epochs = int(os.environ.get("ND_EPOCHS", "12"))
    print(f"nd {nd.__version__}: training the seed's MNIST Net with Adam")
    model, acc, seconds, train_loader, test_loader = train(epochs)
    same = save_and_reload(model, test_loader)
    profile_steps(model, train_loader)
    ext_ok = extension_demo()
    # the bar: >= 95% test accuracy within a minute of training on 2 cores
    ok = acc >= 0.95 and seconds < 60 and same and ext_ok
    print("main job:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
