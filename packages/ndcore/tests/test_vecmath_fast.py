"""Boundaries of the float32 fast paths in csrc/kernels/vecmath.h: exp's exponent-field scaling
(k moved by 64 each side of 0, subnormal and overflow ends), log's rebased mantissa split at
sqrt(2), gelu's single-exp form (|x| clamp at 4 sqrt2, zero below -5.75), and the AVX-512 x16
forms of log/log1p/tanh/erf (Note [vecmath x16]): special lanes mixed into otherwise normal
vectors, masked tails, tanh's expm1 reduction steps, and a sweep over every 4099th float bit
pattern. Run with ND_SIMD=avx2/baseline to cover the other ISA variants."""
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


X16 = {"log": np.log, "log1p": np.log1p, "tanh": np.tanh, "erf": sp.erf}


def _check_ulp(name, x, bound=2.0):
    got = getattr(nd, name)(nd.tensor(x)).numpy()
    with np.errstate(all="ignore"):
        ref = X16[name](x.astype(np.float64))
    nan = np.isnan(ref)
    assert np.isnan(got[nan]).all(), (name, x[nan & ~np.isnan(got)][:5])
    with np.errstate(over="ignore"):
        fin = np.isfinite(ref.astype(np.float32))
    np.testing.assert_array_equal(got[~nan & ~fin], ref[~nan & ~fin].astype(np.float32))
    if fin.any():
        assert _ulp(got[fin], ref[fin]) <= bound, name
    zero = ref == 0  # signed zeros kept (log1p(-0), tanh(-0), erf(-0))
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(ref[zero]))


@pytest.mark.parametrize("name", sorted(X16))
def test_x16_bit_pattern_sweep(name):
    # every 4099th bit pattern: both signs, subnormals, huge values, inf and NaN payloads
    x = (np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)).view(np.float32)
    x = np.concatenate([x, np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4028235e38,
                                      -3.4028235e38, -1.0, 1.0], np.float32)])
    _check_ulp(name, x)


@pytest.mark.parametrize("name", sorted(X16))
@pytest.mark.parametrize("n", [1, 7, 15, 16, 17, 31, 33, 48])
def test_x16_special_lanes_and_tails(name, n):
    # one special value per vector at a moving lane: only that vector takes the special path,
    # its normal lanes must come out as in any other vector; lengths cover the masked tail
    rng = np.random.default_rng(n)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, -1.0, -2.0, 3e38], np.float32)
    for sv in specials:
        x = rng.uniform(0.05, 5.0, n).astype(np.float32)
        if name in ("tanh", "erf"):
            x *= rng.choice([-1, 1], n).astype(np.float32)
        x[rng.integers(0, n)] = sv
        _check_ulp(name, x)


def test_tanh_reduction_steps_and_small_inputs():
    # 2|x| log2(e) crossing each half-integer moves k by one; below ln2/4 k is 0 and tanh ~ x
    steps = [(k + 0.5) * np.log(2.0) / 2 for k in range(28)]
    x = _around(steps + [-s for s in steps] + [1e-3, 2**-20, 2**-126, 9.5, 9.01], 500)
    _check_ulp("tanh", x)
