"""NumPy float64 reference of grid_sample (bilinear/nearest, 4-D and 5-D): forward, grad_input and grad_grid,
following torch's coordinate rules, including its non-finite ones, which differ by rank:

- 5-D (torch's scalar kernel): the forward clips NaN to the last pixel under border/reflection; the backward lets
  it through, so it selects nothing there; an unclipped NaN/inf coordinate (zeros) gives 0.
- 4-D (torch's vectorised kernel): the clamp sends NaN to 0; reflection uses a truncated quotient; an unclipped
  NaN/inf coordinate has NaN weights, which make the output (and part of grad_grid) NaN. Where torch's backward
  is undefined (NaN under border/reflection: it indexes memory with NaN) the point has coordinate 0 and zero
  derivative.
"""
from __future__ import annotations

import numpy as np

PAD = {"zeros": 0, "border": 1, "reflection": 2}


def _unnormalize(c, size, align):
    if align:
        return ((c + 1) / 2) * (size - 1), np.full(c.shape, (size - 1) / 2)
    return ((c + 1) * size - 1) / 2, np.full(c.shape, size / 2)


def _clip(x, size, forward):
    mx = float(size - 1)
    grad = ((x > 0) & (x < mx)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(x <= 0, 0.0, np.where(x >= mx, mx, x))
    if forward:  # min(size - 1, max(x, 0)): NaN -> size - 1
        out = np.where(np.isnan(x), mx, out)
    else:  # NaN compares false both ways: passes through with derivative 1
        grad = np.where(np.isnan(x), 1.0, grad)
    return out, grad


def _reflect(x, twice_low, twice_high):
    if twice_low == twice_high:
        return np.zeros(x.shape), np.zeros(x.shape)
    mn, span = twice_low / 2, (twice_high - twice_low) / 2
    v = x - mn
    mult = np.where(v < 0, -1.0, 1.0)
    v = np.abs(v)
    with np.errstate(invalid="ignore"):
        extra = np.fmod(v, span)
        q = np.floor(v / span)
        # torch converts floor() to a 32-bit int; x86 makes NaN/out-of-range INT_MIN, which is even
        inrange = (q >= -2.0 ** 31) & (q < 2.0 ** 31)
        odd = np.where(inrange, np.fmod(np.where(inrange, q, 0.0), 2) != 0, False)
    return np.where(odd, span - extra + mn, extra + mn), np.where(odd, -mult, mult)


def _reflect2(x, size, align):
    if align and size <= 1:
        return np.zeros(x.shape), np.zeros(x.shape)
    low, twice_span = (0.0, 2.0 * (size - 1)) if align else (-0.5, 2.0 * size)
    v = x - low
    a = np.abs(v)
    with np.errstate(invalid="ignore"):
        extra = a - np.trunc(a / twice_span) * twice_span
        reflected = twice_span - extra
        flip = extra > reflected
    out = np.where(np.isnan(extra) | np.isnan(reflected), np.nan, np.minimum(extra, reflected)) + low
    return out, np.where(flip != (v < 0), -1.0, 1.0)


def source2(c, size, pad, align, forward):
    """torch's 4-D rules (see the module docstring)."""
    scale = (size - 1) / 2 if align else size / 2
    x = (c + 1) * scale - (0.0 if align else 0.5)
    g = np.full(c.shape, scale)
    if pad == "zeros":
        return x, g
    if pad == "reflection":
        x, gr = _reflect2(x, size, align)
        g = g * gr
    mx = float(size - 1)
    with np.errstate(invalid="ignore"):
        inside = (x > 0) & (x < mx)
        out = np.where(np.isnan(x), 0.0, np.clip(x, 0.0, mx))
    return out, np.where(inside, g, 0.0)


def source(c, size, pad, align, forward, rank=3):
    """Source coordinate of normalised grid values ``c`` and its derivative."""
    if rank == 2:
        return source2(c, size, pad, align, forward)
    x, g = _unnormalize(c, size, align)
    if pad == "border":
        x, gc = _clip(x, size, forward)
        g = g * gc
    elif pad == "reflection":
        x, gr = _reflect(x, 0, 2 * (size - 1)) if align else _reflect(x, -1, 2 * size - 1)
        x, gc = _clip(x, size, forward)
        g = g * gr * gc
    return x, g


def grid_sample_ref(x, grid, mode, pad, align, go=None):
    """Returns the output, and with a cotangent ``go`` also (grad_input, grad_grid)."""
    x, grid = np.asarray(x, np.float64), np.asarray(grid, np.float64)
    k = x.ndim - 2
    n, c = x.shape[:2]
    sizes = x.shape[2:][::-1]  # x, y[, z] order, as the grid's last dim
    out_sp = grid.shape[1:-1]
    m = int(np.prod(out_sp))
    flat = x.reshape(n, c, -1)
    strides = [int(np.prod(sizes[:d])) for d in range(k)]
    g = grid.reshape(n, m, k)
    rows = np.arange(n)[:, None]

    def taps(forward):
        """Per corner: (linear index, inside mask, weight); per axis: (fraction, derivative) for bilinear."""
        # 4-D nearest takes the forward's coordinates in both directions, as torch's does
        fwd = forward or (mode == "nearest" and k == 2)
        coords = [source(g[..., d], sizes[d], pad, align, fwd, k) for d in range(k)]
        if mode == "nearest":
            with np.errstate(invalid="ignore"):
                r = [np.rint(cx) for cx, _ in coords]
                ok = np.all([(ri >= 0) & (ri <= s - 1) for ri, s in zip(r, sizes)], axis=0)
            idx = sum(np.where(ok, ri, 0).astype(np.int64) * st for ri, st in zip(r, strides))
            return [(idx, ok, np.ones(ok.shape))], coords, None
        with np.errstate(invalid="ignore"):
            inside = [(cx >= -1) & (cx < s) for (cx, _), s in zip(coords, sizes)]
            fl = [np.where(ins, np.floor(cx), 0.0) for (cx, _), ins in zip(coords, inside)]
            # 4-D keeps the NaN fraction of a NaN/inf coordinate (its weights poison the sums)
            fr = [np.where(ins, cx - f, cx - np.floor(cx) if k == 2 else 0.0)
                  for (cx, _), ins, f in zip(coords, inside, fl)]
        out = []
        for corner in range(2 ** k):
            bits = [(corner >> d) & 1 for d in range(k)]
            i = [f.astype(np.int64) + b for f, b in zip(fl, bits)]
            ok = np.all([ins & (ii >= 0) & (ii < s) for ins, ii, s in zip(inside, i, sizes)], axis=0)
            w = np.prod([f if b else 1 - f for f, b in zip(fr, bits)], axis=0)
            idx = sum(np.where(ok, ii, 0) * st for ii, st in zip(i, strides))
            out.append((idx, ok, w))
        return out, coords, fr

    def gather(idx, ok):
        v = flat[rows, :, idx]  # (n, m, c)
        return np.where(ok[..., None], v, 0.0).transpose(0, 2, 1)  # outside taps read 0, never 0 * inf

    fwd, _, _ = taps(True)
    y = sum(w[:, None, :] * gather(idx, ok) for idx, ok, w in fwd)
    y = np.asarray(y).reshape((n, c) + out_sp)
    if go is None:
        return y
    go = np.asarray(go, np.float64).reshape(n, c, m)
    bwd, coords, fr = taps(False)
    gi = np.zeros_like(flat)
    for idx, ok, w in bwd:
        contrib = np.where(ok[:, None, :], w[:, None, :] * go, 0.0)
        for b in range(n):
            np.add.at(gi[b].T, idx[b][ok[b]], contrib[b][:, ok[b]].T)
    gg = np.zeros((n, m, k))
    if mode == "bilinear":
        for d in range(k):
            acc = np.zeros((n, m))
            for corner, (idx, ok, _) in enumerate(bwd):
                bits = [(corner >> e) & 1 for e in range(k)]
                dw = np.prod([np.ones(fr[e].shape) if e == d else (fr[e] if bits[e] else 1 - fr[e]) for e in range(k)],
                             axis=0) * (1.0 if bits[d] else -1.0)
                acc += (gather(idx, ok) * go).sum(1) * dw
            gg[..., d] = coords[d][1] * acc
    return y, gi.reshape(x.shape), gg.reshape(grid.shape)
