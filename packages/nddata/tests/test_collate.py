"""default_collate / default_convert / collate: structure, dtypes and values, against
torch.utils.data's where it is installed."""
import collections
import dataclasses

import numpy as np
import pytest

import ndcore
import nddata
from nddata import collate, default_collate, default_collate_fn_map, default_convert

Point = collections.namedtuple("Point", ["x", "y"])


@dataclasses.dataclass
class Sample:
    image: object
    label: int
    name: str = "s"


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: object
    b: object = dataclasses.field(default=0, init=False)


def _to_plain(obj):
    """Nested structure with tensors as (dtype name, NumPy array), comparable across libraries."""
    if isinstance(obj, ndcore.Tensor):
        return ("tensor", str(obj.dtype).split(".")[-1], obj.numpy().tolist())
    if type(obj).__module__ == "torch" and type(obj).__name__ == "Tensor":
        return ("tensor", str(obj.dtype).split(".")[-1], obj.numpy().tolist())
    if isinstance(obj, dict):
        return (type(obj).__name__, {k: _to_plain(v) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__, [_to_plain(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_to_plain(v) for v in obj])
    return obj


def _torchify(obj, torch):
    if isinstance(obj, ndcore.Tensor):
        return torch.from_numpy(obj.numpy().copy())
    if isinstance(obj, dict):
        return type(obj)((k, _torchify(v, torch)) for k, v in obj.items())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_torchify(v, torch) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torchify(v, torch) for v in obj)
    return obj


def _batches():
    rng = np.random.default_rng(0)
    arrs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(4)]
    return {
        "tensors": [ndcore.from_numpy(a) for a in arrs],
        "scalars_0d": [ndcore.tensor(float(i)) for i in range(3)],
        "ints": [1, 2, 3],
        "floats": [0.5, 1.5],
        "bools": [True, False, True],
        "strs": ["a", "bc"],
        "bytes": [b"x", b"y"],
        "np_arrays": arrs,
        "np_int_arrays": [np.arange(3, dtype=np.int32) + i for i in range(2)],
        "np_scalars": [np.float32(1.5), np.float32(2.5)],
        "np_int64": [np.int64(4), np.int64(5)],
        "np_bool": [np.bool_(True), np.bool_(False)],
        "tuples": [(ndcore.tensor([i, i]), i, "n%d" % i) for i in range(3)],
        "lists": [[ndcore.tensor(1.0 * i), [i, i + 1]] for i in range(2)],
        "dicts": [{"x": ndcore.tensor([i]), "y": float(i), "z": {"w": i}} for i in range(3)],
        "namedtuples": [Point(ndcore.tensor([i, 2 * i]), i) for i in range(2)],
        "ordered": [collections.OrderedDict([("b", i), ("a", ndcore.tensor([i]))]) for i in range(2)],
    }


@pytest.mark.parametrize("name", list(_batches()))
def test_default_collate_matches_torch(name):
    torch = pytest.importorskip("torch")
    batch = _batches()[name]
    ours = default_collate(batch)
    ref = torch.utils.data.default_collate(_torchify(batch, torch))
    assert _to_plain(ours) == _to_plain(ref)


def test_collate_values_and_types():
    b = _batches()
    out = default_collate(b["tensors"])
    assert tuple(out.shape) == (4, 2, 3)
    np.testing.assert_array_equal(out.numpy(), np.stack([t.numpy() for t in b["tensors"]]))
    assert default_collate(b["ints"]).dtype == ndcore.int64
    assert default_collate(b["floats"]).dtype == ndcore.float64
    assert default_collate(b["bools"]).dtype == ndcore.bool
    assert default_collate(b["strs"]) == ["a", "bc"]
    assert default_collate(b["bytes"]) == [b"x", b"y"]
    d = default_collate(b["dicts"])
    assert d["z"]["w"].tolist() == [0, 1, 2] and d["y"].dtype == ndcore.float64
    nt = default_collate(b["namedtuples"])
    assert isinstance(nt, Point) and nt.x.tolist() == [[0, 0], [1, 2]]
    od = default_collate(b["ordered"])
    assert isinstance(od, collections.OrderedDict) and list(od) == ["b", "a"]
    t = default_collate(b["tuples"])
    assert isinstance(t, list) and t[2] == ("n0", "n1", "n2")  # as torch: the transposed tuple


def test_collate_dataclass():
    batch = [Sample(ndcore.full((2,), float(i)), i, f"s{i}") for i in range(3)]
    out = default_collate(batch)
    assert isinstance(out, Sample)
    assert out.image.tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    assert out.label.tolist() == [0, 1, 2] and out.name == ["s0", "s1", "s2"]
    fz = default_collate([Frozen(ndcore.tensor([1])), Frozen(ndcore.tensor([2]))])
    assert isinstance(fz, Frozen) and fz.a.tolist() == [[1], [2]] and fz.b.tolist() == [0, 0]
    with pytest.raises(TypeError, match="dataclass batch mixes Sample and Frozen"):
        default_collate([batch[0], Frozen(1)])
    conv = default_convert(Sample(np.arange(2), 1))
    assert isinstance(conv, Sample) and isinstance(conv.image, ndcore.Tensor)


def test_collate_errors_like_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        torch.utils.data.default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers, "
                                        "dicts or lists; found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 "
                                           r"and \[3\] at entry 1"):
        default_collate([ndcore.zeros(2), ndcore.zeros(3)])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        default_collate([ndcore.zeros(3, 2), ndcore.zeros(3, 1)])
    with pytest.raises(ValueError, match="does not fit in int64"):
        default_collate([2**70, 1])


def test_collate_promotes_mixed_dtypes_like_torch_stack():
    torch = pytest.importorskip("torch")
    batch = [ndcore.tensor([1, 2]), ndcore.tensor([0.5, 1.5])]
    ref = torch.utils.data.default_collate([torch.tensor([1, 2]), torch.tensor([0.5, 1.5])])
    assert _to_plain(default_collate(batch)) == _to_plain(ref)


def test_default_convert_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [np.arange(3), np.float64(2.0), Point(np.array(0), np.array(1)), [np.array([0, 1]), "s"],
             {"a": np.ones(2, dtype=np.float32), "b": 3}, (np.arange(2), 1), np.array(["a", "b"]), "text", 7]
    for case in cases:
        ours, ref = default_convert(case), torch.utils.data.default_convert(case)
        if isinstance(case, np.ndarray) and case.dtype.kind == "U":
            assert ours is case and ref is case
            continue
        assert _to_plain(ours) == _to_plain(ref), case


def test_custom_collate_fn_map():
    calls = []

    def tensor_fn(batch, *, collate_fn_map):
        calls.append(len(batch))
        return ndcore.cat(batch)

    out = collate([(ndcore.ones(2), 1), (ndcore.ones(2), 2)], collate_fn_map={ndcore.Tensor: tensor_fn, int: lambda b, *,
                  collate_fn_map: sum(b)})
    assert calls == [2] and tuple(out[0].shape) == (4,) and out[1] == 3
    # subclass lookup goes through the map's keys in order
    assert collate([True, False], collate_fn_map={int: lambda b, *, collate_fn_map: "int"}) == "int"
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        collate([1.0], collate_fn_map={int: lambda b, *, collate_fn_map: b})
    assert set(default_collate_fn_map) >= {ndcore.Tensor, np.ndarray, float, int, str, bytes}
    assert nddata.default_collate is default_collate


def test_collate_tensor_stack_fast_path():
    rng = np.random.default_rng(1)
    arrs = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(5)]
    # non-contiguous samples (transposed views) and 0-dim samples stack like np.stack
    views = [ndcore.from_numpy(a).t() for a in arrs]
    np.testing.assert_array_equal(default_collate(views).numpy(), np.stack([a.T for a in arrs]))
    scalars = default_collate([ndcore.tensor(float(i)) for i in range(4)])
    assert tuple(scalars.shape) == (4,) and scalars.tolist() == [0.0, 1.0, 2.0, 3.0]
    # a (tensor, int) sample: the MNIST-style batch
    out = default_collate([(ndcore.from_numpy(a), i) for i, a in enumerate(arrs)])
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_array_equal(out[0].numpy(), np.stack(arrs))
    assert out[1].dtype == ndcore.int64 and out[1].tolist() == [0, 1, 2, 3, 4]


def test_collate_tensor_shape_errors_name_the_entry():
    batch = [ndcore.zeros(2, 3), ndcore.zeros(2, 3), ndcore.zeros(3, 2), ndcore.zeros(2, 3)]
    with pytest.raises(RuntimeError, match=r"but got \[2, 3\] at entry 0 and \[3, 2\] at entry 2"):
        default_collate(batch)
    with pytest.raises(RuntimeError, match=r"but got \[2, 3\] at entry 0 and \[6\] at entry 1"):
        default_collate([ndcore.zeros(2, 3), ndcore.zeros(6)])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([(1, 2), (3, 4), (5,)])


def test_collate_tensor_into_out_allocator(monkeypatch):
    from nddata import _collate

    made = []

    def alloc(shape, dtype):
        made.append(ndcore.full(shape, -1.0, dtype=dtype))
        return made[-1]

    monkeypatch.setattr(_collate, "_out_allocator", alloc)
    out = default_collate([ndcore.tensor([1, 2]), ndcore.tensor([0.5, 1.5])])
    assert len(made) == 1 and out.data_ptr() == made[0].data_ptr()
    assert out.dtype == ndcore.float32 and out.tolist() == [[1.0, 2.0], [0.5, 1.5]]


def test_collate_ints_and_mixed_numbers_like_torch():
    torch = pytest.importorskip("torch")
    for batch in ([3, 1, 4, 1, 5], [True, False], [1, 2.5], [0.5, 1.5], [-2**63, 2**63 - 1]):
        assert _to_plain(default_collate(batch)) == _to_plain(torch.utils.data.default_collate(batch)), batch
