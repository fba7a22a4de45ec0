"""pow(x, e) for the scalar exponents computed without libm's pow (binary.cpp PowScalar: 2, 3,
0.5, -0.5, -1, -2), against torch (the reference for their signed zeros and infinities) and
float64 NumPy; other exponents and tensor exponents keep the general kernel."""
import numpy as np
import pytest
import torch

import ndcore as nd

SPECIALS = [-0.0, 0.0, -np.inf, np.inf, np.nan, -4.0, 4.0, 1e-45, 3e38, -3e38, 1e-20, 0.7]
FAST = [2, 3, 0.5, -0.5, -1, -2, 2.0, 3.0, -1.0]


def _both(x, dtype):
    return nd.from_numpy(np.array(x)).to(getattr(nd, dtype)), torch.from_numpy(np.array(x)).to(getattr(torch, dtype))


@pytest.mark.parametrize("e", FAST + [1.5, 4, -3, 0, 1])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_scalar_exponent_matches_torch(e, dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.array(SPECIALS), rng.uniform(-5, 5, 300), rng.uniform(0, 1e3, 300)])
    a, ta = _both(x, dtype)
    got, want = (a ** e).float().numpy(), (ta ** e).float().numpy()
    assert (a ** e).dtype == a.dtype
    rtol = {"float32": 2e-7, "float64": 1e-15, "float16": 1e-3, "bfloat16": 8e-3}[dtype]  # 16-bit: 1 ulp
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0, equal_nan=True)
    both_zero = (got == 0) & (want == 0)
    np.testing.assert_array_equal(np.signbit(got[both_zero]), np.signbit(want[both_zero]))


@pytest.mark.parametrize("e", FAST)
def test_accuracy_against_float64(e):
    x = np.random.default_rng(1).uniform(0.01, 100, 10_000).astype(np.float32)
    got = (nd.from_numpy(x) ** e).numpy().astype(np.float64)
    want = np.power(x.astype(np.float64), float(e))
    np.testing.assert_allclose(got, want, rtol=2.5e-7)


def test_integer_base_layouts_and_out():
    xi = np.arange(-6, 6).reshape(3, 4)
    a, ta = nd.from_numpy(xi.copy()), torch.from_numpy(xi.copy())
    assert (a ** 2).dtype == nd.int64
    np.testing.assert_array_equal((a ** 2).numpy(), (ta ** 2).numpy())  # integer kernel, wraps
    np.testing.assert_allclose((a ** 0.5).numpy(), (ta ** 0.5).numpy(), equal_nan=True)
    np.testing.assert_allclose((a ** -1.0).numpy(), (ta ** -1.0).numpy())
    f = np.random.default_rng(2).uniform(0.5, 2, (6, 5)).astype(np.float32)
    b, tb = nd.from_numpy(f.copy()).T, torch.from_numpy(f.copy()).T
    r = b ** 2
    assert tuple(r.stride()) == tuple((tb ** 2).stride())
    np.testing.assert_allclose(r.numpy(), (tb ** 2).numpy(), rtol=1e-7)
    out = nd.empty((5, 6))
    nd.pow(b, 0.5, out=out)
    np.testing.assert_allclose(out.numpy(), (tb ** 0.5).numpy(), rtol=1e-7)
    c = nd.from_numpy(f.copy())
    c.pow_(-2)
    np.testing.assert_allclose(c.numpy(), f ** -2.0, rtol=3e-7)


def test_zero_d_tensor_exponent_and_broadcast():
    x = np.random.default_rng(3).uniform(0.5, 2, (4, 3)).astype(np.float32)
    a = nd.from_numpy(x)
    np.testing.assert_allclose(nd.pow(a, nd.tensor(3.0)).numpy(), x.astype(np.float64) ** 3, rtol=3e-7)
    e = np.array([2.0, 0.5, -1.0])
    np.testing.assert_allclose(nd.pow(a, nd.tensor(e)).numpy(), x**e, rtol=3e-7)
    np.testing.assert_allclose(nd.pow(nd.tensor(2.0), a).numpy(), 2.0 ** x, rtol=3e-7)


@pytest.mark.parametrize("e", [1 / 3, 2.2, -0.7, 3])
def test_float64_gradient_with_a_python_exponent_is_exact(e):
    """The derivative e * x^(e - 1) computes e - 1 on the saved Python number in double (Note
    [Arithmetic on numbers] in dispatch.cpp), not rounded to float32 first."""
    import ndgrad

    a = np.array([91.0, 0.5, 2.0])
    x = nd.tensor(a, dtype=nd.float64, requires_grad=True)
    ndgrad.backward(x.pow(e).sum())
    np.testing.assert_allclose(x.grad.numpy(), e * a ** (e - 1), rtol=1e-15)
    x32 = nd.tensor(a.astype(np.float32), requires_grad=True)
    ndgrad.backward((x32 ** e).sum())
    assert x32.grad.dtype == nd.float32


def test_numbers_with_numbers_keep_the_default_dtype_for_users():
    """Only calls on numbers alone compute in double: where(cond, 1.0, 0) is float32, as torch."""
    assert nd.where(nd.tensor([True, False]), 1.0, 0).dtype == nd.float32
    assert (nd.tensor(2.0) * 0.1).dtype == nd.float32


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8"])
def test_integer_pow_wraps_like_torch(dtype):
    """Integer powers that overflow wrap modulo 2^bits as torch's (the products run in unsigned
    64-bit arithmetic: signed overflow is undefined behaviour, which the sanitizer build reports)."""
    r = np.random.default_rng(5)
    a = r.integers(0 if dtype == "uint8" else -60, 60, 300).astype(dtype)
    b = r.integers(0, 80, 300).astype(dtype)
    got = nd.pow(nd.tensor(a), nd.tensor(b)).numpy()
    want = torch.pow(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_array_equal(got, want)
