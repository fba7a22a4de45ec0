"""Creation (tensor(), factories, random, legacy constructors), zero-copy NumPy interop,
Python conversions, dtype casts, nd.Size, pickling and repr against torch's."""
from __future__ import annotations

import gc
import importlib.util
import pickle

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing.opdb import to_np

HAS_TORCH = importlib.util.find_spec("torch") is not None
OPS = {op.name: op for op in OPDB}


@pytest.mark.parametrize(("data", "dtype", "shape"), [
    (3.5, "float32", ()), (3, "int64", ()), (True, "bool", ()), ([1, 2, 3], "int64", (3,)),
    ([1, 2.5], "float32", (2,)), ([[True, False]], "bool", (1, 2)), ([[1, 2], [3, 4], [5, 6]], "int64", (3, 2)),
    ([[[1.0]], [[2.0]]], "float32", (2, 1, 1)), ([], "float32", (0,)), ([[], []], "float32", (2, 0)),
    (np.array([1, 2], dtype=np.int32), "int32", (2,)), (np.array([1.0, 2.0]), "float64", (2,)),
    (np.array([[1, 0]], dtype=np.uint8), "uint8", (1, 2)), (np.float32(2.0), "float32", ()),
    (np.array(True), "bool", ()), ((1, 2), "int64", (2,)),
], ids=lambda v: repr(v) if not isinstance(v, np.ndarray) else f"np_{v.dtype}")
def test_tensor_dtype_inference(data, dtype, shape):
    t = nd.tensor(data)
    assert t.dtype == getattr(nd, dtype)
    assert tuple(t.shape) == shape
    np.testing.assert_array_equal(to_np(t), np.asarray(data).reshape(shape))


def test_tensor_copies_and_accepts_dtype():
    arr = np.arange(4.0)
    t = nd.tensor(arr, dtype=nd.int16)
    arr[0] = 99
    assert t.dtype == nd.int16 and t.tolist() == [0, 1, 2, 3]
    u = nd.tensor(t)
    u[0] = 5
    assert t[0].item() == 0
    assert nd.tensor([nd.tensor(1.0), nd.tensor(2.0)]).tolist() == [1.0, 2.0]
    with pytest.raises((TypeError, ValueError)):
        nd.tensor([[1, 2], [3]])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "bool", "bfloat16"])
def test_factories_vs_numpy(dtype):
    dt = getattr(nd, dtype)
    assert to_np(nd.zeros(2, 3, dtype=dt)).tolist() == np.zeros((2, 3)).tolist()
    assert to_np(nd.ones((3,), dtype=dt)).tolist() == np.ones(3).astype(bool if dtype == "bool" else float).tolist()
    assert nd.zeros(2, 3, dtype=dt).dtype == dt and tuple(nd.empty(4, 0, 2, dtype=dt).shape) == (4, 0, 2)
    np_dtype = to_np(nd.ones(1, dtype=dt)).dtype
    np.testing.assert_array_equal(to_np(nd.full((2, 2), 1, dtype=dt)), np.full((2, 2), 1).astype(np_dtype))
    np.testing.assert_array_equal(to_np(nd.eye(3, dtype=dt)), np.eye(3))
    np.testing.assert_array_equal(to_np(nd.eye(2, 4, dtype=dt)), np.eye(2, 4))


def test_factory_default_dtypes():
    assert nd.zeros(2).dtype == nd.ones(2).dtype == nd.empty(2).dtype == nd.eye(2).dtype == nd.float32
    assert nd.full((2,), 7).dtype == nd.int64 and nd.full((2,), 7.0).dtype == nd.float32
    assert nd.full((2,), True).dtype == nd.bool
    assert nd.arange(5).dtype == nd.int64 and nd.arange(0.0, 1.0, 0.25).dtype == nd.float32
    assert nd.linspace(0, 1, 3).dtype == nd.float32
    assert tuple(nd.zeros(()).shape) == () and tuple(nd.ones([]).shape) == ()


@pytest.mark.parametrize("args", [(5,), (2, 9), (10, 0, -3), (0, 1, 0.1), (1, 2.5, 0.5), (-1.0, 1.0, 0.3), (0, 0)], ids=repr)
def test_arange_vs_numpy_and_torch(args):
    t = nd.arange(*args)
    is_int = all(isinstance(a, int) for a in args)
    expected = np.arange(*args, dtype=np.int64 if is_int else np.float64)
    assert t.dtype == (nd.int64 if is_int else nd.float32)
    assert tuple(t.shape) == expected.shape
    np.testing.assert_allclose(to_np(t), expected, *OPS["arange"].tol(t.dtype.name))
    if HAS_TORCH:
        import torch

        want = torch.arange(*args)
        assert want.tolist()[-1:] == t.tolist()[-1:] and want.shape[0] == t.shape[0]


def test_arange_bad_step_sign_raises():
    with pytest.raises((ValueError, RuntimeError), match=r"\[arange\]"):
        nd.arange(3, 1)  # torch: upper bound and lower bound inconsistent with step sign
    with pytest.raises((ValueError, RuntimeError), match=r"\[arange\]"):
        nd.arange(0, 5, 0)


@pytest.mark.parametrize("args", [(0, 1, 5), (-2, 2, 7), (3, -3, 4), (1, 1, 3), (0, 10, 1), (0, 1, 0), (0.5, 100, 1000)],
                         ids=repr)
def test_linspace_vs_numpy_and_torch(args):
    t = nd.linspace(*args)
    np.testing.assert_allclose(to_np(t), np.linspace(*args), *OPS["linspace"].tol("float32"))
    if HAS_TORCH and args[2] > 0:
        import torch

        want = torch.linspace(*args)
        assert t[0].item() == want[0].item() and t[-1].item() == want[-1].item()  # endpoints are exact
    t64 = nd.linspace(*args, dtype=nd.float64)
    np.testing.assert_allclose(to_np(t64), np.linspace(*args), *OPS["linspace"].tol("float64"))


def test_rand_randn_statistics_and_seeding():
    nd.manual_seed(1234)
    u = to_np(nd.rand(100_000)).astype(np.float64)
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.std() - (1 / 12) ** 0.5) < 0.005
    z = to_np(nd.randn(100_000)).astype(np.float64)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    assert abs((np.abs(z) < 1).mean() - 0.6827) < 0.01
    nd.manual_seed(7)
    a = nd.randn(5, 3)
    nd.manual_seed(7)
    assert a.tolist() == nd.randn(5, 3).tolist()
    assert nd.randn(5, 3).tolist() != a.tolist()
    g1, g2 = nd.Generator().manual_seed(3), nd.Generator().manual_seed(3)
    assert nd.rand(4, generator=g1).tolist() == nd.rand(4, generator=g2).tolist()
    assert nd.randn(2, dtype=nd.float64).dtype == nd.float64
    state = nd.get_rng_state()
    first = nd.rand(3).tolist()
    nd.set_rng_state(state)
    assert nd.rand(3).tolist() == first


def test_randint_and_randperm():
    nd.manual_seed(0)
    r = nd.randint(-3, 4, (10_000,))
    assert r.dtype == nd.int64 and int(r.min()) == -3 and int(r.max()) == 3
    assert set(nd.randint(5, (200,)).tolist()) == set(range(5))
    assert nd.randint(0, 10, (3, 2), dtype=nd.int16).dtype == nd.int16
    for n in (0, 1, 17, 1000):
        p = nd.randperm(n)
        assert p.dtype == nd.int64 and sorted(p.tolist()) == list(range(n))
    g = nd.Generator().manual_seed(5)
    assert nd.randperm(50, generator=g).tolist() == nd.randperm(50, generator=nd.Generator().manual_seed(5)).tolist()


def test_legacy_constructors():
    t = nd.Tensor(2, 3)
    assert tuple(t.shape) == (2, 3) and t.dtype == nd.float32
    assert nd.Tensor([1, 2]).tolist() == [1.0, 2.0] and nd.Tensor().shape == (0,)
    assert nd.LongTensor([1, 2]).dtype == nd.int64 and nd.LongTensor([1, 2]).tolist() == [1, 2]
    f = nd.FloatTensor(4)
    assert tuple(f.shape) == (4,) and f.dtype == nd.float32
    assert nd.DoubleTensor([1]).dtype == nd.float64 and nd.BoolTensor([1, 0]).tolist() == [True, False]
    assert nd.ByteTensor(2, 2).dtype == nd.uint8
    assert nd.ones(2).type() == "nd.FloatTensor" and nd.ones(2, dtype=nd.int64).type() == "nd.LongTensor"
    assert nd.ones(2).type("nd.IntTensor").dtype == nd.int32 and nd.ones(2).type(nd.int8).dtype == nd.int8


def test_numpy_shares_memory_both_ways():
    x = nd.ones(5, 5)
    arr = x.numpy()
    x += 1
    assert (arr == 2).all()
    np.add(arr, 1, out=arr)
    assert (to_np(x) == 3).all() and x[4, 4].item() == 3.0
    arr[0, 0] = -1
    assert x[0, 0].item() == -1.0
    v = x.t()[1:3]
    assert np.shares_memory(v.numpy(), arr)
    np.testing.assert_array_equal(v.numpy(), arr.T[1:3])


def test_from_numpy_shares_memory_and_keeps_array_alive():
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = nd.from_numpy(arr)
    assert t.dtype == nd.int32
    arr[1, 2] = 50
    assert t[1, 2].item() == 50
    t[0, 0] = -4
    assert arr[0, 0] == -4
    del arr
    gc.collect()
    _ = [np.zeros(1000) for _ in range(100)]
    assert t.tolist() == [[-4, 1, 2], [3, 4, 50]]
    s = nd.from_numpy(np.arange(10.0)[::3])
    assert s.stride() == (3,) and s.tolist() == [0.0, 3.0, 6.0, 9.0]
    with pytest.raises(TypeError, match="from_numpy"):
        nd.from_numpy(np.zeros(2, dtype=np.uint16))


def test_non_native_byte_order():
    big = np.arange(3, dtype=">f4")
    assert nd.tensor(big).tolist() == [0.0, 1.0, 2.0]  # copied with the values, not the raw bytes
    assert nd.as_tensor(np.arange(3, dtype=">i4")).tolist() == [0, 1, 2]
    with pytest.raises((ValueError, TypeError), match="from_numpy"):
        nd.from_numpy(big)  # torch: byte order different from the native byte order


def test_asarray_buffer_protocol_and_array_interface():
    x = nd.arange(6, dtype=nd.float64).reshape(2, 3)
    a = np.asarray(x)
    assert a.dtype == np.float64 and np.shares_memory(a, x.numpy())
    m = memoryview(nd.arange(4, dtype=nd.int16))
    assert m.shape == (4,) and m.format == "h" and m.tolist() == [0, 1, 2, 3]
    assert np.array(x.t()).tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    assert np.asarray(x, dtype=np.int8).dtype == np.int8
    assert nd.as_tensor(a).numpy().ctypes.data == a.ctypes.data
    with pytest.raises(TypeError, match="bfloat16"):
        nd.ones(2, dtype=nd.bfloat16).numpy()


def test_python_conversions():
    assert nd.tensor([1.5, 2.5]).tolist() == [1.5, 2.5]
    assert isinstance(nd.tensor([1, 2]).tolist()[0], int) and isinstance(nd.tensor([True]).tolist()[0], bool)
    assert nd.tensor(2.5).item() == 2.5 and nd.tensor([[7]]).item() == 7 and nd.tensor(True).item() is True
    assert nd.tensor(3).tolist() == 3
    assert len(nd.ones(4, 2)) == 4
    assert [t.item() for t in nd.arange(3)] == [0, 1, 2]
    assert bool(nd.tensor([1])) and not bool(nd.tensor(0.0))
    assert float(nd.tensor([2.5])) == 2.5 and int(nd.tensor(3.7)) == 3 and int(nd.tensor(-3.7)) == -3
    assert f"{nd.tensor(2.5):.2f}" == "2.50"
    for bad in (lambda: len(nd.tensor(1.0)), lambda: iter(nd.tensor(1.0)), lambda: int(nd.ones(2)), lambda: float(nd.ones(2))):
        with pytest.raises(TypeError):
            bad()
    with pytest.raises((ValueError, RuntimeError)):
        bool(nd.ones(2))
    with pytest.raises((ValueError, RuntimeError)):
        nd.ones(2).item()


@pytest.mark.parametrize(("method", "dtype"), [("long", "int64"), ("float", "float32"), ("double", "float64"),
                                               ("int", "int32"), ("half", "float16"), ("bfloat16", "bfloat16"),
                                               ("bool", "bool"), ("byte", "uint8"), ("short", "int16"), ("char", "int8")])
def test_dtype_conversion_methods(method, dtype):
    x = nd.tensor([-1.75, 0.0, 2.5, 3.25])
    y = getattr(x, method)()
    assert y.dtype == getattr(nd, dtype)
    expected = np.array([-1.75, 0.0, 2.5, 3.25])
    if dtype == "bool":
        expected = expected != 0
    elif dtype.startswith("int"):
        expected = expected.astype(np.int64)
    if dtype == "uint8":
        expected = np.array([255, 0, 2, 3])  # torch truncates then wraps, like C
    np.testing.assert_array_equal(to_np(y), expected)
    assert x.to(getattr(nd, dtype)).dtype == y.dtype
    assert x.to(dtype=getattr(nd, dtype)).tolist() == y.tolist()


def test_to_identity_and_copy():
    x = nd.ones(3)
    assert x.to(nd.float32) is x and x.to("cpu") is x
    c = x.to(nd.float32, copy=True)
    assert c is not x and not c._is_view_of(x)
    assert x.to(nd.ones(1, dtype=nd.int8)).dtype == nd.int8


def test_size():
    s = nd.ones(2, 3).shape
    assert isinstance(s, nd.Size) and isinstance(s, tuple)
    assert s == (2, 3) and s == nd.Size([2, 3]) and nd.ones(2, 3).size() == s and nd.ones(2, 3).size(-1) == 3
    assert s.numel() == 6 and repr(s) == "nd.Size([2, 3])" and repr(nd.Size([])) == "nd.Size([])"
    assert isinstance(s[0:1], nd.Size) and nd.zeros(s).shape == s


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int8", "int64", "uint8", "bool"])
def test_pickle_round_trip(dtype):
    x = nd.tensor([[-1.5, 0.0, 2.25], [3.0, 1.0, 0.5]]).to(getattr(nd, dtype))
    for t in (x, x.t(), x[1:, ::2]):
        y = pickle.loads(pickle.dumps(t))
        assert y.dtype == t.dtype and y.shape == t.shape and y.tolist() == t.tolist()
    assert pickle.loads(pickle.dumps(nd.float16)) == nd.float16


# Hard-coded so the check runs without torch; spelled exactly as torch prints them.
def test_repr_hard_coded():
    assert repr(nd.ones(2, 2)) == "tensor([[1., 1.],\n        [1., 1.]])"
    assert repr(nd.tensor([[1.5, 2.0]], dtype=nd.float64)) == "tensor([[1.5000, 2.0000]], dtype=nd.float64)"
    assert repr(nd.tensor([1, -2], dtype=nd.int8)) == "tensor([ 1, -2], dtype=nd.int8)"


REPR_CASES = {
    "ints": lambda m: m.arange(-3, 9).reshape(3, 4),
    "bools": lambda m: m.tensor([[True, False], [False, True]]),
    "float64": lambda m: m.tensor([-2.0, -1.0 / 3, 0.0, 2.5e-3, 7.0], dtype=m.float64),
    "bfloat16": lambda m: m.tensor([0.1, 1.5, -3.25, 100.0]).to(m.bfloat16),
    "summarised": lambda m: m.arange(2000.0).reshape(40, 50) / 7,
    "long_ints": lambda m: m.arange(3000),
    "0d": lambda m: m.tensor(2.5),
    "empty": lambda m: m.zeros(0, 3),
    "float16": lambda m: m.tensor([1e-3, 65504.0], dtype=m.float16),
    "sci": lambda m: m.tensor([1e-8, 1e8, 1.0]),
    "nonfinite": lambda m: m.tensor([float("nan"), float("inf"), -1.5]),
    "transposed": lambda m: m.arange(6.0).reshape(2, 3).t(),
}


@pytest.mark.parametrize("name", list(REPR_CASES))
def test_repr_matches_torch(name):
    ours = repr(REPR_CASES[name](nd))
    assert ours.startswith("tensor(") and "torch" not in ours
    if HAS_TORCH:
        import torch

        assert repr(nd.ones(5, 5)) == repr(torch.ones(5, 5))
        assert ours == repr(REPR_CASES[name](torch)).replace("torch.", "nd.")


@pytest.mark.parametrize("value", [np.float64(2.5), np.float32(2.5), np.float16(1.5), np.int32(3), np.int8(-2),
                                   np.uint8(7), np.bool_(True)])
def test_numpy_scalars_keep_their_dtype(value):
    for make in (nd.tensor, nd.as_tensor):
        t = make(value)
        assert t.dtype.name == np.asarray(value).dtype.name and t.dim() == 0 and t.item() == value.item()


def test_dtype_methods_convert_or_return_self():
    x = nd.arange(4, dtype=nd.uint8)
    assert x.float().dtype == nd.float32 and x.float().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert x.double().dtype == nd.float64 and x.long().dtype == nd.int64 and x.bool().tolist() == [False, True, True, True]
    assert x.byte() is x  # same dtype: no copy, as torch


@pytest.mark.parametrize("shape", [(), (0, 2), (2, 3)])
def test_like_constructors_keep_shape_including_0d(shape):
    x = nd.ones(shape, dtype=nd.float64)
    for like in (nd.empty_like, nd.zeros_like, nd.ones_like, nd.rand_like, nd.randn_like):
        y = like(x)
        assert tuple(y.shape) == shape and y.dtype == nd.float64
    assert nd.zeros_like(x).sum().item() == 0 and nd.full_like(x, 3).sum().item() == 3 * x.numel()


@pytest.mark.parametrize("name,args,expect", [
    ("zeros", ((3,),), [0.0, 0.0, 0.0]),
    ("ones", ((3,),), [1.0, 1.0, 1.0]),
    ("full", ((3,), 2.0), [2.0, 2.0, 2.0]),
    ("arange", (3,), [0.0, 1.0, 2.0]),
    ("linspace", (0, 1, 3), [0.0, 0.5, 1.0]),
])
def test_creation_out_is_written(name, args, expect):
    # out= must receive the result (kernels that build a fresh tensor used to leave it untouched)
    out = nd.full((3,), 7.0)
    assert getattr(nd, name)(*args, out=out) is out
    assert out.tolist() == expect


def test_random_and_eye_out_is_written():
    out = nd.full((3, 3), 7.0)
    assert nd.eye(3, out=out) is out and out.tolist() == np.eye(3).tolist()
    nd.manual_seed(0)
    expect = nd.rand(4).tolist()
    out = nd.full((4,), 7.0)
    nd.manual_seed(0)
    assert nd.rand(4, out=out) is out and out.tolist() == expect
    out = nd.full((5,), 7.0)
    assert sorted(nd.randperm(5, out=out).tolist()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    out = nd.full((6,), -1, dtype=nd.int64)
    nd.randint(0, 3, (6,), out=out)
    assert all(0 <= v < 3 for v in out.tolist())
    out = nd.full((2,), 7.0)
    nd.randn(2, out=out)
    assert out.tolist() != [7.0, 7.0]


def test_creation_out_resizes_empty_and_rejects_wrong_shape():
    out = nd.empty(0)
    nd.arange(4, out=out)
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"\[arange\] out= has shape \(2,\)"):
        nd.arange(4, out=nd.zeros(2))
