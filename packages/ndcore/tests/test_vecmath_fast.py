"""Boundaries of the float32 fast paths in csrc/kernels/vecmath.h: exp's exponent-field scaling
(k moved by 64 each side of 0, subnormal and overflow ends), log's rebased mantissa split at
sqrt(2), and gelu's single-exp form (|x| clamp at 4 sqrt2, zero below -5.75). Run with
ND_SIMD=avx2/baseline to cover the other ISA variants."""
import numpy as np
import pytest
import scipy.special as sp

import ndcore as nd


def _ulp(got, ref):
    with np.errstate(over="ignore"):
        ref32 = ref.astype(np.float32)
    fin = np.isfinite(ref32)
    assert np.array_equal(got[~fin], ref32[~fin])
    sp_ = np.spacing(np.abs(ref32[fin])).astype(np.float64)
    return float((np.abs(got[fin].astype(np.float64) - ref[fin]) / sp_).max())


def _around(points, n=2000):
    """Every float within n ulps of each point."""
    out = []
    for p in points:
        b = np.float32(p).view(np.int32)
        out.append((b + np.arange(-n, n + 1, dtype=np.int32)).view(np.float32))
    return np.concatenate(out)


def test_exp_scaling_boundaries():
    # sign change of k's shift, smallest normal result, subnormal end, overflow end
    x = _around([0.0, -0.0, 0.3466, -0.3466, -87.33654, -86.0, -103.97, 88.72283, 88.0])
    x = x[np.isfinite(x)]
    got = nd.exp(nd.tensor(x)).numpy()
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64))
    assert _ulp(got, ref) <= 2.0


def test_log_mantissa_split():
    # significands just below and above sqrt(2) in several binades, and subnormals
    x = _around([np.sqrt(2.0), np.sqrt(2.0) * 2**-60, np.sqrt(2.0) * 2**70, np.sqrt(0.5), 1.0, 2**-130])
    x = x[x > 0]
    got = nd.log(nd.tensor(x)).numpy()
    assert _ulp(got, np.log(x.astype(np.float64))) <= 2.0


def test_tanh_branch_and_clamp():
    x = _around([0.625, -0.625, 9.0, 9.5, -9.5, 3.0])
    got = nd.tanh(nd.tensor(x)).numpy()
    assert _ulp(got, np.tanh(x.astype(np.float64))) <= 2.0


def test_gelu_clamp_and_cutoff():
    x = np.concatenate([_around([-5.75, 5.656854, -5.656854, 0.0, -0.0], 3000), np.linspace(-8, 8, 200001)]).astype(np.float32)
    got = nd.gelu(nd.tensor(x)).numpy()
    xd = x.astype(np.float64)
    ref = (0.5 * xd * sp.erfc(-xd / np.sqrt(2))).astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=2e-7)
    np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
    special = nd.gelu(nd.tensor(np.array([-np.inf, np.inf, np.nan, -1e4, 3e38], np.float32))).numpy()
    assert np.isnan(special[0]) and special[1] == np.inf and np.isnan(special[2])
    assert special[3] == 0 and special[4] == np.float32(3e38)
