"""Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict: torch semantics and reprs."""
from __future__ import annotations

from collections import OrderedDict

import ndcore as nd
import numpy as np
import pytest

import ndnn
from ndnn import Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList, Sequential


def _lib(torch_mode):
    if torch_mode:
        import torch
        return torch.nn, torch
    return ndnn, nd


def make_affine(nn, T):
    class Affine(nn.Module):
        def __init__(self, scale, shift=0.0):
            super().__init__()
            self.scale = nn.Parameter(T.tensor([float(scale)]))
            self.shift = shift

        def forward(self, x):
            return x * self.scale + self.shift

        def extra_repr(self):
            return f"scale={float(self.scale.detach()[0])}, shift={self.shift}"

    return Affine


Affine = make_affine(ndnn, nd)


def test_sequential_forward_indexing_slicing():
    s = Sequential(Affine(2), Affine(3, 1.0), Affine(-1))
    np.testing.assert_allclose(s(nd.tensor([1.0, 2.0])).detach().numpy(), [-7.0, -13.0])
    assert len(s) == 3 and s[1].shift == 1.0 and s[-1] is s[2]
    sub = s[1:]
    assert isinstance(sub, Sequential) and len(sub) == 2 and sub[0] is s[1]
    assert list(sub._modules) == ["1", "2"]  # slices keep the names, as in torch
    with pytest.raises(IndexError, match="index 3 is out of range"):
        s[3]
    assert [m.shift for m in s] == [0.0, 1.0, 0.0]
    s[0] = Affine(5)
    assert float(s[0].scale) == 5.0


def test_sequential_ordered_dict_and_mutation():
    s = Sequential(OrderedDict([("a", Affine(1)), ("b", Affine(2))]))
    assert [k for k, _ in s.named_parameters()] == ["a.scale", "b.scale"]
    s.append(Affine(3))
    assert list(s._modules) == ["a", "b", "2"]
    s = Sequential(Affine(1), Affine(2))
    s.insert(0, Affine(0))
    assert [float(m.scale) for m in s] == [0.0, 1.0, 2.0]
    s.insert(-1, Affine(9))
    assert [float(m.scale) for m in s] == [0.0, 1.0, 9.0, 2.0]
    with pytest.raises(IndexError):
        s.insert(10, Affine(1))
    s.extend([Affine(4)])
    assert len(s) == 5
    del s[1]
    assert list(s._modules) == ["0", "1", "2", "3"] and float(s[1].scale) == 9.0
    del s[1:3]
    assert [float(m.scale) for m in s] == [0.0, 4.0]
    popped = s.pop(0)
    assert float(popped.scale) == 0.0 and len(s) == 1
    t = s + Sequential(Affine(7))
    assert len(t) == 2 and t[1] is not None
    with pytest.raises(ValueError, match="only objects of Sequential"):
        s + [Affine(1)]
    m = Sequential(Affine(1), Affine(2)) * 2
    assert len(m) == 4 and m[0] is m[2]
    with pytest.raises(ValueError, match="Non-positive"):
        s * 0
    s += Sequential(Affine(8))
    assert len(s) == 2


def test_module_list():
    ml = ModuleList([Affine(1), Affine(2)])
    ml.append(Affine(3))
    ml.extend([Affine(4)])
    ml += [Affine(5)]
    assert len(ml) == 5 and [float(m.scale) for m in ml] == [1, 2, 3, 4, 5]
    assert isinstance(ml[1:3], ModuleList) and len(ml[1:3]) == 2
    ml.insert(0, Affine(0))
    assert float(ml[0].scale) == 0 and float(ml[-1].scale) == 5
    del ml[0]
    assert list(ml._modules) == [str(i) for i in range(5)]
    assert float(ml.pop(-1).scale) == 5 and len(ml) == 4
    with pytest.raises(IndexError, match="index 4 is out of range"):
        ml[4]
    with pytest.raises(TypeError, match="iterable"):
        ml.extend(3)
    assert len(list(ml.parameters())) == 4
    assert len(ml + ModuleList([Affine(1)])) == 5
    with pytest.raises(NotImplementedError):
        ml(1)


def test_module_dict():
    md = ModuleDict({"b": Affine(2), "a": Affine(1)})
    assert list(md) == ["b", "a"]  # insertion order (torch keeps a plain dict's order here)
    md["c"] = Affine(3)
    assert "c" in md and len(md) == 3 and list(md.keys()) == ["b", "a", "c"]
    assert [k for k, _ in md.named_parameters()] == ["b.scale", "a.scale", "c.scale"]
    md.update([("d", Affine(4))])
    assert float(md.pop("d").scale) == 4 and "d" not in md
    del md["a"]
    assert list(md.values())[1] is md["c"]
    with pytest.raises(ValueError, match="has length 3"):
        md.update([("x", Affine(1), 3)])
    md.clear()
    assert len(md) == 0


def test_parameter_list_and_dict():
    pl = ParameterList([nd.zeros(2), Parameter(nd.ones(3))])
    assert all(isinstance(p, Parameter) for p in pl)  # tensors become Parameters
    pl.append(nd.ones(1))
    assert len(pl) == 3 and [k for k, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert isinstance(pl[0:2], ParameterList) and len(pl[0:2]) == 2
    pl[0] = nd.full((2,), 5.0)
    assert float(pl[0][1]) == 5.0
    with pytest.raises(RuntimeError, match="should not be called"):
        pl(1)
    with pytest.raises(TypeError, match="iterable"):
        pl.extend(nd.zeros(2))
    pd = ParameterDict({"w": nd.ones(2, 3), "a": nd.zeros(1)})
    assert list(pd) == ["a", "w"]  # a plain dict is sorted, as in torch
    pd["z"] = Parameter(nd.zeros(4))
    assert isinstance(pd["w"], Parameter) and pd.get("nope", 3) == 3
    assert [k for k, _ in pd.named_parameters()] == ["a", "w", "z"]
    k, v = pd.popitem()
    assert k == "z" and v.shape == (4,) and "z" not in pd
    assert pd.setdefault("q", nd.ones(1)).shape == (1,)
    merged = pd | ParameterDict({"r": nd.ones(1)})
    assert list(merged) == ["a", "w", "q", "r"] and list(pd) == ["a", "w", "q"]
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == []
    with pytest.raises(TypeError, match="not a string"):
        pd[1] = nd.zeros(1)


def _tree(torch_mode):
    nn, T = _lib(torch_mode)
    Aff = make_affine(nn, T)
    return nn.Sequential(OrderedDict([
        ("first", Aff(1)),
        ("list", nn.ModuleList([Aff(2), Aff(2), Aff(2), Aff(3), nn.Sequential()])),
        ("dict", nn.ModuleDict({"x": Aff(1), "y": nn.ModuleList()})),
        ("plist", nn.ParameterList([T.zeros(2, 3), T.ones(4, dtype=T.float64)])),
        ("pdict", nn.ParameterDict({"k": T.zeros(5)})),
    ]))


def test_reprs_and_names_match_torch():
    pytest.importorskip("torch")
    ours, theirs = _tree(False), _tree(True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [k for k, _ in ours.named_modules()] == [k for k, _ in theirs.named_modules()]

    def norm(s):
        return s.replace("torch.", "nd.")

    assert repr(ours) == norm(repr(theirs))


def test_container_dir_hides_indices():
    s = Sequential(Affine(1))
    assert "0" not in dir(s) and "append" in dir(s)


def test_deepcopy_of_containers():
    import copy
    s = Sequential(Affine(1), ModuleList([Affine(2)]), ParameterList([nd.ones(2)]))
    c = copy.deepcopy(s)
    assert c[0].scale is not s[0].scale and isinstance(c[2][0], Parameter)
    assert len(c[2]) == 1


def test_module_list_in_module_registers():
    class Holder(Module):
        def __init__(self):
            super().__init__()
            self.layers = ModuleList(Affine(i) for i in range(3))

    assert [k for k, _ in Holder().named_parameters()] == ["layers.0.scale", "layers.1.scale", "layers.2.scale"]
