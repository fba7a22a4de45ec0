"""Data loading workloads (nddata.DataLoader vs torch.utils.data.DataLoader vs a NumPy loop).

MNIST-shaped: 60,000 in-memory uint8 28x28 images with int64 labels; ``__getitem__`` converts
one image to float and normalises it ((x/255 - 0.1307)/0.3081); batch 64, shuffled, one
epoch per call (custom workloads reporting one epoch's time per request, so the `vs` ratios
are samples/s ratios). ``_w2`` variants use 2 worker processes started afresh per
epoch (non-persistent, the default); ``first_batch_w2`` is the time from ``iter(loader)`` to
the first batch; ``getitems`` variants let the dataset fetch a whole batch with vectorised ops
through ``__getitems__`` (both loaders support it). ``--quick`` runs a quarter of the
dataset (15,000 images) so the family fits the quick run's budget; ratios are unchanged.
"""

import time

from ..registry import workload

N, BATCH = 60_000, 64
MEAN, STD = 0.1307, 0.3081


def _size(ctx) -> int:
    return N // 4 if ctx.plan.samples <= 3 else N  # the quick plan takes 3 samples


def _images(ctx):
    import numpy as np

    n = _size(ctx)
    cache = ctx.state.setdefault("mnist", {})
    if cache.get("n") != n:
        rng = np.random.default_rng(0)
        cache["x"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        cache["y"] = rng.integers(0, 10, n).astype(np.int64)
        cache["n"] = n
    return cache["x"], cache["y"]


def _modules(ctx):
    if ctx.system.name == "nd":
        import nddata

        return ctx.lib, nddata
    import torch.utils.data

    return ctx.lib, torch.utils.data


def _loader(ctx, workers: int, batched: bool = False):
    lib, data = _modules(ctx)
    x_np, y_np = _images(ctx)

    class Mnist(data.Dataset):
        def __init__(self):
            self.x = lib.from_numpy(x_np)
            self.y = lib.from_numpy(y_np)

        def __len__(self):
            return len(y_np)

        def __getitem__(self, i):
            return (self.x[i].float() / 255 - MEAN) / STD, int(self.y[i])

    class MnistBatched(Mnist):
        def __getitems__(self, indices):
            idx = lib.tensor(indices)
            x = (self.x[idx].float() / 255 - MEAN) / STD
            return list(zip(x.unbind(0), self.y[idx].tolist()))

    ds = MnistBatched() if batched else Mnist()
    return data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers)


def _epochs(ctx, loader):
    def one():
        t0 = time.perf_counter_ns()
        n = 0
        for x, _ in loader:
            n += x.shape[0]
        elapsed = time.perf_counter_ns() - t0
        if n != _size(ctx):
            raise RuntimeError(f"[bench] an epoch yielded {n} samples, expected {_size(ctx)}")
        return elapsed

    for i, _ in enumerate(loader):  # warm-up: page the images in, start thread pools
        if i == 20:
            break
    # One epoch per request; the harness's rounds supply the repetitions.
    return [one()]


@workload("data_mnist_epoch_w0", "nd", "torch", custom=True)
def _mnist_w0(ctx):
    return _epochs(ctx, _loader(ctx, 0))


@workload("data_mnist_epoch_w2", "nd", "torch", custom=True)
def _mnist_w2(ctx):
    return _epochs(ctx, _loader(ctx, 2))


@workload("data_mnist_getitems_w0", "nd", "torch", custom=True)
def _mnist_getitems_w0(ctx):
    return _epochs(ctx, _loader(ctx, 0, batched=True))


@workload("data_mnist_getitems_w2", "nd", "torch", custom=True)
def _mnist_getitems_w2(ctx):
    return _epochs(ctx, _loader(ctx, 2, batched=True))


@workload("data_mnist_first_batch_w2", "nd", "torch", custom=True)
def _first_batch(ctx):
    loader = _loader(ctx, 2)
    out = []
    for _ in range(3):
        t0 = time.perf_counter_ns()
        it = iter(loader)
        next(it)
        out.append(time.perf_counter_ns() - t0)
        del it  # shuts the workers down before the next sample
    return out


@workload("data_mnist_epoch_w0", "numpy", custom=True)
def _mnist_numpy(ctx):
    np = ctx.lib
    x, y = _images(ctx)
    n = len(y)
    rng = np.random.default_rng(0)

    def one():
        t0 = time.perf_counter_ns()
        perm = rng.permutation(n)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            xb = np.stack([(x[i].astype(np.float32) / 255 - MEAN) / STD for i in idx])
            yb = y[idx]
            del xb, yb
        return time.perf_counter_ns() - t0

    return [one()]
