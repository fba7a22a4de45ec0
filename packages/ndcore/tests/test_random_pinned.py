"""Exact values of the Philox-driven random kernels under manual_seed.

The values were recorded from the block-at-a-time generator before the vectorised one
(csrc/kernels/random_simd.cpp) replaced it; they pin the stream so seeded runs stay
reproducible across releases, SIMD levels (ND_SIMD) and thread counts.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import ndcore as nd


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = nd.get_num_threads()
    nd.set_num_threads(request.param)
    yield request.param
    nd.set_num_threads(old)


def _hex(values):
    return [float(v).hex() for v in values]


def test_philox_known_answer(threads):
    # Random123's known-answer vector for Philox-4x32-10 with counter 0 and key 0:
    # 6627e8d5 e169c58d bc57ac4c 9b00dbd8; rand() keeps each word's top 24 bits.
    nd.manual_seed(0)
    assert [int(v * 2**24) for v in nd.rand(4).tolist()] == [0x6627E8, 0xE169C5, 0xBC57AC, 0x9B00DB]


def test_pinned_values(threads):
    nd.manual_seed(2024)
    assert _hex(nd.rand(6).tolist()) == [
        "0x1.3516d60000000p-1", "0x1.1302400000000p-2", "0x1.f81d520000000p-1",
        "0x1.5668c00000000p-4", "0x1.6298500000000p-2", "0x1.be5b100000000p-2",
    ]
    assert _hex(nd.randn(6).tolist()) == [
        "0x1.3f14200000000p+0", "0x1.986c460000000p-2", "0x1.b0abac0000000p+0",
        "0x1.aa86960000000p-1", "-0x1.77cc0a0000000p+0", "0x1.5506920000000p-3",
    ]
    assert _hex(nd.randn(4, dtype=nd.float64).tolist()) == [
        "-0x1.5616e3d109f9dp-4", "-0x1.6739e14679367p-3", "-0x1.751c0676c0c52p-1", "0x1.f6c13c51ec4f8p-1",
    ]
    assert _hex(nd.rand(3, dtype=nd.float64).tolist()) == [
        "0x1.ffc1f64acf1f0p-1", "0x1.45b9142f1fa7ep-1", "0x1.2d0c93d74f39cp-2",
    ]
    assert nd.randint(0, 1000, (8,)).tolist() == [123, 684, 86, 763, 837, 693, 284, 274]
    _, mask = nd.native_dropout(nd.ones(20), 0.5, True)
    assert [int(v) for v in mask.tolist()] == [1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1]
    assert nd.empty(12).bernoulli_(0.5).tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    # large enough for the 16-lane path, several chunks and (at 2 threads) a split
    x = nd.randn(64, 1000)
    assert _hex([x[0, 0].item(), x[17, 513].item(), x[63, 999].item()]) == [
        "-0x1.062c9e0000000p+1", "-0x1.5d737e0000000p-2", "0x1.1b94ac0000000p-1",
    ]
    assert nd.randperm(10).tolist() == [2, 3, 1, 8, 7, 4, 6, 9, 0, 5]


# Every size from 1 to 70 crosses the 16-block groups' tails; the sums pin all values at once.
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_prefixes_agree_across_sizes(dtype, threads):
    """A fill of n values is the first n values of any longer fill from the same counter."""
    dt = getattr(nd, dtype)
    for fn in (nd.rand, nd.randn):
        nd.manual_seed(5)
        full = fn(1000, dtype=dt).float().numpy()
        for n in list(range(1, 70)) + [255, 256, 257, 1000]:
            nd.manual_seed(5)
            got = fn(n, dtype=dt).float().numpy()
            np.testing.assert_array_equal(got, full[:n], err_msg=f"{fn.__name__}({n}, {dtype})")


def test_dropout_mask_prefixes(threads):
    nd.manual_seed(9)
    _, full = nd.native_dropout(nd.ones(5000), 0.3, True)
    for n in (1, 3, 17, 63, 64, 65, 1023, 1025, 4097):
        nd.manual_seed(9)
        _, m = nd.native_dropout(nd.ones(n), 0.3, True)
        assert (m.numpy() == full.numpy()[:n]).all(), n


def test_large_fills_match_across_thread_counts():
    old = nd.get_num_threads()
    try:
        res = []
        for th in (1, 2):
            nd.set_num_threads(th)
            nd.manual_seed(77)
            res.append([nd.randn(300_001).numpy(), nd.rand(200_003).numpy(), nd.randn(100_001, dtype=nd.float64).numpy(),
                        nd.native_dropout(nd.ones(100_003), 0.2, True)[1].numpy(), nd.randint(0, 7, (50_001,)).numpy()])
        for a, b in zip(*res):
            np.testing.assert_array_equal(a, b)
    finally:
        nd.set_num_threads(old)


_SIMD_SCRIPT = """
import hashlib, ndcore as nd
nd.manual_seed(31)
parts = [nd.randn(10_007), nd.rand(9_999), nd.randn(333, dtype=nd.float16), nd.native_dropout(nd.ones(4_099), 0.4, True)[1],
         nd.randint(0, 10**6, (5_001,)), nd.empty(777, dtype=nd.float64).bernoulli_(0.3)]
print(hashlib.sha256(b"".join(p.float().numpy().tobytes() for p in parts)).hexdigest())
"""


def test_same_values_at_every_simd_level():
    """The AVX-512, AVX2 and baseline variants produce the same words and the same float bits."""
    out = set()
    for level in ("baseline", "avx2", "avx512"):
        env = dict(os.environ, ND_SIMD=level)
        out.add(subprocess.run([sys.executable, "-c", _SIMD_SCRIPT], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(out) == 1, out


def test_strided_fill_takes_the_contiguous_values():
    """A non-contiguous target gets the values a contiguous fill of its shape would, in row-major order."""
    for fill in (lambda t: t.normal_(2.0, 3.0), lambda t: t.uniform_(-2.0, 5.0), lambda t: t.bernoulli_(0.3), lambda t: t.random_(0, 9)):
        nd.manual_seed(8)
        ref = fill(nd.empty(30, 40)).numpy()
        nd.manual_seed(8)
        t = nd.zeros(40, 30).t()
        fill(t)
        np.testing.assert_array_equal(t.numpy(), ref)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_distributions_ks(dtype):
    stats = pytest.importorskip("scipy.stats")
    nd.manual_seed(123)
    z = nd.randn(200_003, dtype=getattr(nd, dtype)).numpy().astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    z = nd.empty(100_001, dtype=getattr(nd, dtype)).normal_(-1.5, 0.25).numpy().astype(np.float64)
    assert stats.kstest(z, "norm", args=(-1.5, 0.25)).pvalue > 1e-3
    u = nd.rand(200_003, dtype=getattr(nd, dtype)).numpy().astype(np.float64)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # the words are independent across rows and lanes: neighbouring values are uncorrelated
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01 and abs(np.corrcoef(u[:-4], u[4:])[0, 1]) < 0.01


def _philox_words(seed, nblocks):
    """Philox-4x32-10 words of counters 0..nblocks-1 under key `seed`, block k's four at [4k:4k+4]."""
    m = np.uint64(0xFFFFFFFF)
    ctr = np.arange(nblocks, dtype=np.uint64)
    c0, c1 = ctr & m, ctr >> np.uint64(32)
    c2 = c3 = np.zeros(nblocks, dtype=np.uint64)
    a, b = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0, p1 = c0 * np.uint64(0xD2511F53), c2 * np.uint64(0xCD9E8D57)
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(a), p1 & m, (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(b), p0 & m
        a, b = (a + 0x9E3779B9) & 0xFFFFFFFF, (b + 0xBB67AE85) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1).reshape(-1)


def test_against_numpy_philox():
    """rand, randint (random_'s division-free remainder) and dropout masks from a NumPy Philox."""
    seed, n = 0x1234_5678_9ABC, 4099
    w = _philox_words(seed, (n + 1) // 2)
    r = (w[0::2] << np.uint64(32)) | w[1::2]  # the 64-bit draws of random_, two per block
    for lo, hi in ((0, 1), (0, 3), (-7, 1000), (0, 2**32 + 1), (-(2**62), 2**62), (0, 2**63 - 1)):
        nd.manual_seed(seed)
        want = (r[:n] % np.uint64(hi - lo)).astype(object) + lo
        assert nd.randint(lo, hi, (n,)).tolist() == want.tolist(), (lo, hi)
    w = _philox_words(seed, (n + 3) // 4)[:n]
    nd.manual_seed(seed)
    np.testing.assert_array_equal(nd.rand(n).numpy(), (w >> np.uint64(8)).astype(np.float32) / np.float32(2**24))
    nd.manual_seed(seed)
    np.testing.assert_array_equal(nd.native_dropout(nd.ones(n), 0.3, True)[1].numpy(), w < np.uint64(round(0.7 * 2**32)))
