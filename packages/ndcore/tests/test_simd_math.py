"""Accuracy of the vectorised transcendental kernels (csrc/kernels/vecmath.h) in every ISA
variant (simd_dispatch.h), against float64/long-double NumPy references."""

import ctypes
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.special as sp

import ndcore as nd

F32_MAX_ULP = 2.0
F64_MAX_ULP = 2.0
# sigmoid = num / (1 + e) adds two roundings to exp's; torch 2.13's own sigmoid measures 2.3 ulp
# (float32) and 2.1 (float64) on the same sweep.
COMPOSED_MAX_ULP = 2.5
LEVELS = ["baseline", "avx2", "avx512"]


def _simd_level():
    lib = ctypes.CDLL(str(pathlib.Path(nd._C.__file__).with_name("libndcore.so")))
    lib.nd_simd_level.restype = ctypes.c_char_p
    return lib.nd_simd_level().decode()


def _cpu_levels():
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        flags = pathlib.Path("/proc/cpuinfo").read_text().split("flags", 1)[-1].split("\n", 1)[0].split()
    out = ["baseline"]
    if "avx2" in flags and "fma" in flags:
        out.append("avx2")
        if all(f in flags for f in ("avx512f", "avx512bw", "avx512dq", "avx512vl")):
            out.append("avx512")
    return out


# name -> (reference on float64/longdouble, float32 sweep range)
REFS = {
    "exp": (np.exp, (-110.0, 90.0)),
    "exp2": (np.exp2, (-160.0, 130.0)),
    "expm1": (np.expm1, (-40.0, 90.0)),
    "log": (np.log, (0.0, 3e38)),
    "log2": (np.log2, (0.0, 3e38)),
    "log10": (np.log10, (0.0, 3e38)),
    "log1p": (np.log1p, (-1.0, 3e38)),
    "tanh": (np.tanh, (-12.0, 12.0)),
    "erf": (sp.erf, (-6.0, 6.0)),
    "sigmoid": (sp.expit, (-110.0, 110.0)),
    # below -87 sigmoid is subnormal and the product with x amplifies its rounding; torch returns
    # -0 there
    "silu": (lambda x: x * sp.expit(x), (-87.0, 110.0)),
}
F64_REFS = {
    "exp": (np.exp, (-750.0, 710.0)),
    "log": (np.log, (0.0, 1.7e308)),
    "sigmoid": (sp.expit, (-750.0, 750.0)),
}
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, 2.0, 1e-45, -1e-45, 1e-38, -1e-38, 88.72, 88.73,
            -87.3, -103.9, -104.0, 128.0, -150.0, 3.4e38, -3.4e38]


def _sweep(lo, hi, n, dtype, seed):
    """Uniform points over [lo, hi] plus log-uniform magnitudes (subnormals up) of both signs."""
    rng = np.random.default_rng(seed)
    tiny = np.finfo(dtype).smallest_subnormal
    big = max(abs(lo), abs(hi))
    mags = np.exp(rng.uniform(np.log(float(tiny)), np.log(big), n // 2))
    x = np.concatenate([rng.uniform(lo, hi, n - n // 2), mags, -mags, np.asarray(SPECIALS)])
    x = x.astype(dtype)
    return x[((x >= lo) & (x <= hi)) | ~np.isfinite(x)]


def _ulp_error(y, ref, dtype):
    """Max error in units of the last place of the correctly rounded reference; non-finite
    results must match exactly (NaN where the reference is NaN)."""
    ref = np.asarray(ref, np.longdouble)
    with np.errstate(over="ignore"):
        ref_r = ref.astype(dtype)
    y = np.asarray(y)
    nonfin = ~np.isfinite(ref_r)
    same = (np.isnan(ref_r) & np.isnan(y)) | (ref_r == y)
    # a reference that overflows the dtype by less than half an ulp may round to the max value
    near_max = nonfin & np.isfinite(ref) & (np.abs(y) == np.finfo(dtype).max)
    bad = nonfin & ~same & ~near_max
    assert not bad.any(), f"non-finite mismatch at x-index {np.flatnonzero(bad)[:5]}: got {y[bad][:5]}, want {ref_r[bad][:5]}"
    fin = ~nonfin
    spacing = np.spacing(np.abs(ref_r[fin])).astype(np.longdouble)
    err = np.abs(y[fin].astype(np.longdouble) - ref[fin]) / spacing
    return float(err.max()), int(np.flatnonzero(fin)[err.argmax()])


def _bound(name, dtype):
    if name in ("sigmoid", "silu"):
        return COMPOSED_MAX_ULP
    return F32_MAX_ULP if dtype == np.float32 else F64_MAX_ULP


def _check(name, x, y, dtype, refs):
    bound = _bound(name, dtype)
    ref_fn = refs[name][0]
    with np.errstate(all="ignore"):
        ref = ref_fn(x.astype(np.float64)) if dtype == np.float32 else ref_fn(x.astype(np.longdouble))
    err, i = _ulp_error(y, ref, dtype)
    assert err <= bound, f"{name} {np.dtype(dtype).name}: {err:.2f} ulp at x={x[i]!r} (got {y[i]!r})"


@pytest.mark.parametrize("name", sorted(REFS))
def test_float32_accuracy(name):
    lo, hi = REFS[name][1]
    x = _sweep(lo, hi, 1_000_000, np.float32, seed=1)
    y = getattr(nd, name)(nd.tensor(x)).numpy()
    _check(name, x, y, np.float32, REFS)


@pytest.mark.parametrize("name", sorted(F64_REFS))
def test_float64_accuracy(name):
    lo, hi = F64_REFS[name][1]
    x = _sweep(lo, hi, 400_000, np.float64, seed=2)
    y = getattr(nd, name)(nd.tensor(x)).numpy()
    _check(name, x, y, np.float64, F64_REFS)


@pytest.mark.parametrize(
    "name, x, want",
    [
        ("exp", [np.inf, -np.inf, 89.0, -104.0, 0.0, -0.0], [np.inf, 0.0, np.inf, 0.0, 1.0, 1.0]),
        ("exp2", [128.0, -151.0, 3.0, -149.0, 0.0], [np.inf, 0.0, 8.0, 2.0**-149, 1.0]),
        ("expm1", [np.inf, -np.inf, -0.0, 1e-30, 89.0], [np.inf, -1.0, -0.0, 1e-30, np.inf]),
        ("log", [0.0, -0.0, -1.0, -np.inf, np.inf, 1.0], [-np.inf, -np.inf, np.nan, np.nan, np.inf, 0.0]),
        ("log2", [0.0, -2.0, np.inf, 1024.0, 2.0**-149], [-np.inf, np.nan, np.inf, 10.0, -149.0]),
        ("log10", [0.0, -2.0, np.inf, 1.0], [-np.inf, np.nan, np.inf, 0.0]),
        ("log1p", [-1.0, -2.0, np.inf, -0.0, 1e-30], [-np.inf, np.nan, np.inf, -0.0, 1e-30]),
        ("tanh", [np.inf, -np.inf, 20.0, -20.0, -0.0, 1e-30], [1.0, -1.0, 1.0, -1.0, -0.0, 1e-30]),
        ("erf", [np.inf, -np.inf, 5.0, -5.0, -0.0, 1e-30], [1.0, -1.0, 1.0, -1.0, -0.0, 1.1283791e-30]),
        ("sigmoid", [np.inf, -np.inf, 0.0, 100.0], [1.0, 0.0, 0.5, 1.0]),
    ],
)
def test_special_values(name, x, want):
    x = np.asarray(x, np.float32)
    want = np.asarray(want, np.float32)
    got = getattr(nd, name)(nd.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=2.5e-7, atol=0)
    signed = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(want[signed]))
    assert np.isnan(getattr(nd, name)(nd.tensor(np.asarray([np.nan], np.float32))).numpy()).all()


@pytest.mark.parametrize("name", sorted(F64_REFS))
def test_float64_special_values(name):
    x = np.asarray(SPECIALS + [709.78, 709.79, -745.0, -746.0, 5e-324, 1.7e308], np.float64)
    got = getattr(nd, name)(nd.tensor(x)).numpy()
    with np.errstate(all="ignore"):
        want = F64_REFS[name][0](x)
    # NumPy's expit(-745) underflows to 0 where the true value rounds to the smallest subnormal
    np.testing.assert_allclose(got, want, rtol=5e-16, atol=np.finfo(np.float64).smallest_subnormal)
    signed = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(want[signed]))


def test_sigmoid_tail_is_subnormal_not_zero():
    x = np.asarray([-95.0, -100.0, -103.0], np.float32)
    got = nd.sigmoid(nd.tensor(x)).numpy()
    want = sp.expit(x.astype(np.float64)).astype(np.float32)
    assert (got > 0).all()
    np.testing.assert_allclose(got, want, rtol=1e-2)


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "erf", "sigmoid", "expm1", "log1p"])
def test_strided_and_contiguous_agree(name):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.01, 4.0, (64, 130)).astype(np.float32)
    t = nd.tensor(a)
    fn = getattr(nd, name)
    contiguous = fn(t).numpy()
    strided = fn(t.t()).numpy()  # the scalar (non-contiguous) loop
    np.testing.assert_allclose(strided.T, contiguous, rtol=3e-7, atol=0)
    tail = fn(t[:, 3:]).numpy()  # odd lengths: vector remainder loop
    np.testing.assert_allclose(tail, contiguous[:, 3:], rtol=3e-7, atol=0)


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "erf", "sigmoid", "silu", "expm1", "log1p", "log2", "log10"])
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a = rng.standard_normal(100_003).astype(np.float32) * 4
    if name.startswith("log"):
        a = np.abs(a) + (0.0 if name != "log1p" else -0.5)
    tfn = torch.nn.functional.silu if name == "silu" else getattr(torch, name)
    np.testing.assert_allclose(getattr(nd, name)(nd.tensor(a)).numpy(), tfn(torch.from_numpy(a)).numpy(), rtol=1e-6,
                               atol=1e-37)


_CHILD = r"""
import json, sys, numpy as np, ndcore as nd
sys.path.insert(0, {here!r})
import test_simd_math as t
out = {{"level": t._simd_level(), "errors": {{}}}}
if {quick}:
    print(json.dumps(out))
    sys.exit(0)
for name in sorted(t.REFS):
    lo, hi = t.REFS[name][1]
    x = t._sweep(lo, hi, 200_000, np.float32, seed=5)
    y = getattr(nd, name)(nd.tensor(x)).numpy()
    with np.errstate(all="ignore"):
        ref = t.REFS[name][0](x.astype(np.float64))
    out["errors"][name] = t._ulp_error(y, ref, np.float32)[0]
for name in sorted(t.F64_REFS):
    lo, hi = t.F64_REFS[name][1]
    x = t._sweep(lo, hi, 100_000, np.float64, seed=6)
    y = getattr(nd, name)(nd.tensor(x)).numpy()
    with np.errstate(all="ignore"):
        ref = t.F64_REFS[name][0](x.astype(np.longdouble))
    out["errors"]["f64_" + name] = t._ulp_error(y, ref, np.float64)[0]
print(json.dumps(out))
"""


def _run_child(level, quick=False):
    env = dict(os.environ, ND_SIMD=level)
    code = _CHILD.format(here=str(pathlib.Path(__file__).parent), quick=quick)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("level", LEVELS)
def test_every_isa_variant_is_accurate(level):
    supported = _cpu_levels()
    result, _ = _run_child(level)
    # a level the CPU lacks is lowered to the best one it has
    assert result["level"] == (level if level in supported else supported[-1])
    for name, err in result["errors"].items():
        dtype = np.float64 if name.startswith("f64_") else np.float32
        assert err <= _bound(name.removeprefix("f64_"), dtype), (level, name, err)


def test_default_level_is_the_cpus_best():
    if "ND_SIMD" in os.environ:
        pytest.skip("ND_SIMD is set for this run")
    assert _simd_level() == _cpu_levels()[-1]


def test_unknown_nd_simd_is_ignored_with_a_warning():
    result, err = _run_child("sse9", quick=True)
    assert "ignoring ND_SIMD=sse9" in err
    assert result["level"] == _cpu_levels()[-1]
