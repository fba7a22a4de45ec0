"""NumPy references for pooling shared by the kernel tests (float64 results)."""
from __future__ import annotations

import numpy as np


def pool_out_size(n, k, s, p, d, ceil):
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def max_pool_ref(x, k, s, p, d, ceil):
    """torch's CPU rule in row-major window order: start at the first valid element, replace when
    `v > best or isnan(v)` (first max wins ties, the last NaN wins)."""
    D = len(k)
    sp = x.shape[-D:]
    osz = [pool_out_size(sp[i], k[i], s[i], p[i], d[i], ceil) for i in range(D)]
    lead = x.shape[:-D]
    xf = x.astype(np.float64)
    out = np.empty(lead + tuple(osz))
    idx = np.empty(lead + tuple(osz), np.int64)
    for o in np.ndindex(*osz):
        best = np.full(lead, -np.inf)
        best_i = None
        for kk in np.ndindex(*k):
            pos = [o[i] * s[i] - p[i] + kk[i] * d[i] for i in range(D)]
            if any(q < 0 or q >= sp[i] for i, q in enumerate(pos)):
                continue
            v = xf[(Ellipsis,) + tuple(pos)]
            flat = np.ravel_multi_index(pos, sp)
            best_i = np.full(lead, flat, np.int64) if best_i is None else best_i
            take = (v > best) | np.isnan(v)
            best = np.where(take, v, best)
            best_i = np.where(take, flat, best_i)
        out[(Ellipsis,) + o] = best
        idx[(Ellipsis,) + o] = best_i
    return out, idx


def avg_pool_ref(x, k, s, p, ceil, count_include_pad, divisor_override=None):
    D = len(k)
    sp = x.shape[-D:]
    osz = [pool_out_size(sp[i], k[i], s[i], p[i], 1, ceil) for i in range(D)]
    out = np.zeros(x.shape[:-D] + tuple(osz))
    for o in np.ndindex(*osz):
        lo = [o[i] * s[i] - p[i] for i in range(D)]
        hi = [min(lo[i] + k[i], sp[i] + p[i]) for i in range(D)]
        pool = np.prod([hi[i] - lo[i] for i in range(D)])
        lo = [max(v, 0) for v in lo]
        hi = [min(hi[i], sp[i]) for i in range(D)]
        win = x[(Ellipsis,) + tuple(slice(lo[i], hi[i]) for i in range(D))].astype(np.float64)
        div = divisor_override or (pool if count_include_pad else np.prod([hi[i] - lo[i] for i in range(D)]))
        out[(Ellipsis,) + o] = win.sum(axis=tuple(range(-D, 0))) / div
    return out
