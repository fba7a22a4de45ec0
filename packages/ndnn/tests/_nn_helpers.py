"""Shared helpers for the layer/functional/loss tests: tensor conversion and comparisons with torch."""
from __future__ import annotations

import numpy as np

import ndcore as nd


def t(a, dtype=None, requires_grad=False):
    """NumPy array (or list) -> ndcore tensor (a copy)."""
    a = np.array(a, dtype=dtype, order="C")  # a contiguous copy (ascontiguousarray would make 0-d 1-d)
    out = nd.from_numpy(a)
    if requires_grad:
        out.requires_grad_(True)
    return out


def tt(a, requires_grad=False):
    """NumPy array or ndcore tensor -> torch tensor (a copy)."""
    import torch

    a = a.detach().numpy() if hasattr(a, "detach") and not isinstance(a, np.ndarray) else np.asarray(a)
    out = torch.from_numpy(np.array(a))
    if requires_grad:
        out.requires_grad_(True)
    return out


def close(a, b, rtol=1e-5, atol=1e-6):
    """Asserts that two tensors/arrays (ndcore, torch or NumPy) agree in shape and values."""
    a = _np(a)
    b = _np(b)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _np(x):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def rng(seed=0):
    return np.random.default_rng(seed)


def check_vs_torch(nd_fn, torch_fn, arrays, grad=(), rtol=1e-4, atol=1e-5, seed=123):
    """Runs ``nd_fn`` and ``torch_fn`` on the same NumPy ``arrays`` (positions in ``grad`` require grad),
    compares outputs, then backpropagates one random cotangent through both and compares input grads.

    Returns the ndcore output.
    """
    import torch

    xs = [t(a, requires_grad=i in grad) if isinstance(a, np.ndarray) else a for i, a in enumerate(arrays)]
    ts = [tt(a, requires_grad=i in grad) if isinstance(a, np.ndarray) else a for i, a in enumerate(arrays)]
    out = nd_fn(*xs)
    out_t = torch_fn(*ts)
    if isinstance(out, tuple):
        out, out_t = out[0], out_t[0]
    close(out, out_t, rtol=rtol, atol=atol)
    if grad:
        g = rng(seed).standard_normal(tuple(out.shape)).astype(_np(out).dtype)
        out.backward(t(g))
        out_t.backward(torch.from_numpy(g))
        for i in grad:
            close(xs[i].grad, ts[i].grad, rtol=rtol, atol=atol)
    return out


def copy_into_torch(module, torch_module):
    """Copies every parameter and buffer of an ndnn module into the torch module with the same names."""
    import torch

    sd = {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(sd)


def check_module_vs_torch(module, torch_module, arrays, grad_inputs=(0,), rtol=1e-4, atol=1e-5, copy=True,
                          seed=321):
    """Copies ``module``'s state into ``torch_module``, runs both on ``arrays``, then compares outputs, input
    grads, parameter grads (by name) and buffers after the step. Returns the ndcore output."""
    import torch

    if copy:
        copy_into_torch(module, torch_module)
    xs = [t(a, requires_grad=i in grad_inputs) if isinstance(a, np.ndarray) else a for i, a in enumerate(arrays)]
    ts = [tt(a, requires_grad=i in grad_inputs) if isinstance(a, np.ndarray) else a for i, a in enumerate(arrays)]
    out = module(*xs)
    out_t = torch_module(*ts)
    if isinstance(out, tuple):
        out, out_t = out[0], out_t[0]
    close(out, out_t, rtol=rtol, atol=atol)
    g = rng(seed).standard_normal(tuple(out.shape)).astype(_np(out).dtype)
    if out.requires_grad:
        out.backward(t(g))
        out_t.backward(torch.from_numpy(g))
        for i in grad_inputs:
            close(xs[i].grad, ts[i].grad, rtol=rtol, atol=atol)
        tp = dict(torch_module.named_parameters())
        for name, p in module.named_parameters():
            if p.requires_grad:
                assert p.grad is not None, f"no grad for {name}"
                close(p.grad, tp[name].grad, rtol=rtol, atol=atol)
    tb = dict(torch_module.named_buffers())
    for name, b in module.named_buffers():
        close(b, tb[name], rtol=rtol, atol=atol)
    return out
