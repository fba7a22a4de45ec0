"""NumPy reference implementations of each optimizer's update rule (the tests' oracle without torch).

Each ``ref_<name>(p, g, state, **opts)`` updates ``p`` (a float64 array) in place for one step and
keeps its own state in the ``state`` dict, following the math in the optimizer's docstring.
"""
from __future__ import annotations

import numpy as np


def _grad(p, g, maximize, weight_decay, decoupled=False, lr=0.0):
    g = -g if maximize else g
    if weight_decay and decoupled:
        p *= 1 - lr * weight_decay
        return g
    return g + weight_decay * p if weight_decay else g


def ref_sgd(p, g, st, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    d = _grad(p, g, maximize, weight_decay)
    if momentum:
        st["buf"] = d.copy() if "buf" not in st else momentum * st["buf"] + (1 - dampening) * d
        d = d + momentum * st["buf"] if nesterov else st["buf"]
    p -= lr * d


def ref_adam(p, g, st, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
             decoupled_weight_decay=False):
    b1, b2 = betas
    t = st["t"] = st.get("t", 0) + 1
    d = _grad(p, g, maximize, weight_decay, decoupled_weight_decay, lr)
    m = st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * d
    v = st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * d * d
    if amsgrad:
        v = st["vmax"] = np.maximum(st.get("vmax", 0.0), v)
    p -= lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)


def ref_adamw(p, g, st, weight_decay=1e-2, **kw):
    ref_adam(p, g, st, weight_decay=weight_decay, decoupled_weight_decay=True, **kw)


def ref_adamax(p, g, st, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    b1, b2 = betas
    t = st["t"] = st.get("t", 0) + 1
    d = _grad(p, g, maximize, weight_decay)
    m = st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * d
    u = st["u"] = np.maximum(b2 * st.get("u", 0.0), np.abs(d) + eps)
    p -= lr / (1 - b1 ** t) * m / u


def ref_nadam(p, g, st, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
              decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    t = st["t"] = st.get("t", 0) + 1
    d = _grad(p, g, maximize, weight_decay, decoupled_weight_decay, lr)
    mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    # torch keeps the running product in a float32 tensor (state["mu_product"])
    prod = st["prod"] = float(np.float32(st.get("prod", 1.0)) * np.float32(mu))
    m = st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * d
    v = st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * d * d
    denom = np.sqrt(v / (1 - b2 ** t)) + eps
    p -= lr * (1 - mu) / (1 - prod) * d / denom + lr * mu_next / (1 - prod * mu_next) * m / denom


def ref_radam(p, g, st, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
              maximize=False):
    b1, b2 = betas
    t = st["t"] = st.get("t", 0) + 1
    d = _grad(p, g, maximize, weight_decay, decoupled_weight_decay, lr)
    m = st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * d
    v = st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * d * d
    m_hat = m / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho > 5:
        r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        p -= lr * m_hat * r * np.sqrt(1 - b2 ** t) / (np.sqrt(v) + eps)
    else:
        p -= lr * m_hat


def ref_rmsprop(p, g, st, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                maximize=False):
    d = _grad(p, g, maximize, weight_decay)
    v = st["v"] = alpha * st.get("v", 0.0) + (1 - alpha) * d * d
    if centered:
        ga = st["ga"] = alpha * st.get("ga", 0.0) + (1 - alpha) * d
        v = v - ga * ga
    avg = np.sqrt(v) + eps
    if momentum > 0:
        b = st["b"] = momentum * st.get("b", 0.0) + d / avg
        p -= lr * b
    else:
        p -= lr * d / avg


def ref_adagrad(p, g, st, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                maximize=False):
    t = st["t"] = st.get("t", 0) + 1
    d = _grad(p, g, maximize, weight_decay)
    s = st["s"] = st.get("s", initial_accumulator_value) + d * d
    p -= lr / (1 + (t - 1) * lr_decay) * d / (np.sqrt(s) + eps)


def ref_adadelta(p, g, st, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    d = _grad(p, g, maximize, weight_decay)
    v = st["v"] = rho * st.get("v", 0.0) + (1 - rho) * d * d
    delta = np.sqrt(st.get("u", 0.0) + eps) / np.sqrt(v + eps) * d
    st["u"] = rho * st.get("u", 0.0) + (1 - rho) * delta * delta
    p -= lr * delta


def ref_sparse_adam(p, g, st, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
    b1, b2 = betas
    t = st["t"] = st.get("t", 0) + 1
    g = -g if maximize else g
    rows = np.any(g.reshape(g.shape[0], -1) != 0, axis=1)
    m = st.setdefault("m", np.zeros_like(p))
    v = st.setdefault("v", np.zeros_like(p))
    m[rows] += (1 - b1) * (g[rows] - m[rows])
    v[rows] += (1 - b2) * (g[rows] ** 2 - v[rows])
    step = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    p[rows] -= step * m[rows] / (np.sqrt(v[rows]) + eps)


def ref_rprop(p, g, st, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False):
    g = -g if maximize else g
    prev = st.get("prev", np.zeros_like(p))
    sign = np.sign(g * prev)
    factor = np.where(sign > 0, etas[1], np.where(sign < 0, etas[0], 1.0))
    st["step"] = np.clip(st.get("step", np.full_like(p, lr)) * factor, *step_sizes)
    g = np.where(sign < 0, 0.0, g)
    p -= np.sign(g) * st["step"]
    st["prev"] = g


def ref_asgd(p, g, st, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False):
    t = st["t"] = st.get("t", 0) + 1
    eta, mu = st.get("eta", float(np.float32(lr))), st.get("mu", 1.0)
    d = _grad(p, g, maximize, weight_decay)
    p *= 1 - lambd * eta
    p -= eta * d
    st["ax"] = st.get("ax", 0.0) + mu * (p - st.get("ax", 0.0)) if mu != 1 else p.copy()
    # torch keeps eta and mu in float32 tensors
    st["eta"] = float(np.float32(lr / (1 + lambd * lr * t) ** alpha))
    st["mu"] = float(np.float32(1 / max(1, t - t0)))


REFS = {"SGD": ref_sgd, "Adam": ref_adam, "AdamW": ref_adamw, "Adamax": ref_adamax, "NAdam": ref_nadam,
        "RAdam": ref_radam, "RMSprop": ref_rmsprop, "Adagrad": ref_adagrad, "Adadelta": ref_adadelta,
        "SparseAdam": ref_sparse_adam, "Rprop": ref_rprop, "ASGD": ref_asgd}
