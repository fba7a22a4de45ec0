"""Module and Parameter: registration, iteration, state_dict, conversions, hooks, repr, copying."""
from __future__ import annotations

import copy
import pickle
import warnings
from collections import OrderedDict

import ndcore as nd
import ndgrad
import numpy as np
import pytest

import ndnn
from ndnn import Buffer, Module, Parameter


def _lib(torch_mode):
    """(nn namespace, tensor module) for torch or nd, so one builder makes the same tree in both."""
    if torch_mode:
        import torch
        return torch.nn, torch
    return ndnn, nd


def make_classes(nn, T):
    class Lin(nn.Module):
        def __init__(self, i, o, bias=True):
            super().__init__()
            self.weight = nn.Parameter(T.ones(o, i) * 0.5)
            if bias:
                self.bias = nn.Parameter(T.zeros(o))
            else:
                self.register_parameter("bias", None)
            self.register_buffer("steps", T.zeros(1, dtype=T.int64))
            self.register_buffer("scratch", T.zeros(2), persistent=False)

        def forward(self, x):
            y = x @ self.weight.t()
            return y + self.bias if self.bias is not None else y

        def extra_repr(self):
            return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = Lin(3, 4)
            self.act = nn.Module()
            self.blocks = nn.Sequential(Lin(4, 4), Lin(4, 4, bias=False))
            self.shared = self.conv1  # the same module twice
            self.head = nn.ModuleList([Lin(4, 2), Lin(4, 2)])
            self.extra = nn.Parameter(T.ones(2))

        def forward(self, x):
            x = self.blocks(self.conv1(x))
            return self.head[0](x) + self.head[1](x)

    return Lin, Net


def build(torch_mode=False):
    nn, T = _lib(torch_mode)
    return make_classes(nn, T)[1]()


def test_parameter_is_a_tensor_sharing_storage():
    data = nd.arange(6, dtype=nd.float32).reshape(2, 3)
    p = Parameter(data)
    assert isinstance(p, nd.Tensor) and isinstance(p, Parameter)
    assert p.requires_grad and not data.requires_grad
    assert p._is_view_of(data)
    data.add_(1)
    np.testing.assert_array_equal(p.detach().numpy(), data.numpy())
    y = p * 2
    assert type(y) is nd.Tensor  # ops on a Parameter give plain tensors
    assert type(p.detach()) is nd.Tensor
    assert Parameter(data, requires_grad=False).requires_grad is False
    assert Parameter().shape == (0,)
    assert repr(Parameter(nd.zeros(2))).startswith("Parameter containing:\ntensor([0., 0.], requires_grad=True)")


def test_parameter_repr_matches_torch():
    torch = pytest.importorskip("torch")
    ours = repr(Parameter(nd.tensor([1.5, -2.0])))
    theirs = repr(torch.nn.Parameter(torch.tensor([1.5, -2.0])))
    assert ours == theirs


def test_parameter_in_place_ops_keep_identity_and_autograd():
    p = Parameter(nd.ones(3))
    with ndgrad.no_grad():
        r = p.mul_(3)
    assert r is p and isinstance(r, Parameter)
    (p * p).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), np.full(3, 6.0))
    p.data = nd.zeros(4, dtype=nd.float64)
    assert isinstance(p, Parameter) and p.shape == (4,) and p.dtype == nd.float64 and p.requires_grad


def test_parameter_deepcopy_and_pickle():
    p = Parameter(nd.tensor([1.0, 2.0]))
    q = copy.deepcopy(p)
    assert isinstance(q, Parameter) and q.requires_grad and not q._is_view_of(p)
    r = pickle.loads(pickle.dumps(p))
    assert isinstance(r, Parameter) and r.requires_grad
    np.testing.assert_array_equal(r.detach().numpy(), [1.0, 2.0])
    memo = {}
    assert copy.deepcopy([p, p], memo)[0] is memo[id(p)]


def test_buffer_and_uninitialized():
    b = Buffer(nd.ones(2), persistent=False)
    assert isinstance(b, Buffer) and isinstance(b, nd.Tensor) and not isinstance(nd.ones(1), Buffer)
    m = Module()
    m.b = b
    m.c = Buffer(nd.zeros(1))
    assert set(dict(m.named_buffers())) == {"b", "c"}
    assert list(m.state_dict()) == ["c"]
    u = ndnn.UninitializedParameter()
    assert ndnn.parameter.is_lazy(u) and repr(u) == "<UninitializedParameter>"
    with pytest.raises(RuntimeError, match="uninitialized parameter"):
        u.shape
    u.materialize((2, 3))
    assert type(u) is Parameter and u.shape == (2, 3)


@pytest.mark.parametrize("kind", ["named_parameters", "named_buffers", "named_modules", "named_children"])
def test_named_iterators_match_torch(kind):
    torch = pytest.importorskip("torch")
    ours = [k for k, _ in getattr(build(), kind)()]
    theirs = [k for k, _ in getattr(build(True), kind)()]
    assert ours == theirs
    if kind != "named_children":
        ours = [k for k, _ in getattr(build(), kind)(remove_duplicate=False)]
        theirs = [k for k, _ in getattr(build(True), kind)(remove_duplicate=False)]
        assert ours == theirs


def test_iterators_closed_form():
    net = build()
    names = [k for k, _ in net.named_parameters()]
    assert names == ["extra", "conv1.weight", "conv1.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                     "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias"]
    assert [k for k, _ in net.named_parameters(prefix="m", recurse=False)] == ["m.extra"]
    assert len(list(net.parameters())) == 10
    assert len(list(net.modules())) == 9  # shared counted once
    assert [k for k, _ in net.named_children()] == ["conv1", "act", "blocks", "head"]


def test_state_dict_keys_and_values_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = build().state_dict(), build(True).state_dict()
    assert list(ours) == list(theirs)
    assert isinstance(ours, OrderedDict)
    assert list(ours._metadata) == list(theirs._metadata)
    for k in ours:
        np.testing.assert_array_equal(ours[k].numpy(), theirs[k].numpy())
    sd = build().state_dict()
    assert not any(v.requires_grad for v in sd.values())
    kept = build().state_dict(keep_vars=True)
    assert isinstance(kept["conv1.weight"], Parameter)
    assert list(build().state_dict(prefix="x."))[0] == "x.extra"


def test_load_state_dict_copies_in_place_and_keeps_identity():
    net, src = build(), build()
    for p in src.parameters():
        with ndgrad.no_grad():
            p.uniform_(-1, 1, generator=nd.Generator().manual_seed(3))
    w = net.conv1.weight
    result = net.load_state_dict(src.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert net.conv1.weight is w and isinstance(w, Parameter) and w.requires_grad
    np.testing.assert_array_equal(w.detach().numpy(), src.conv1.weight.detach().numpy())


def test_load_state_dict_errors_name_keys_like_torch():
    torch = pytest.importorskip("torch")

    def errors(torch_mode):
        net = build(torch_mode)
        sd = net.state_dict()
        del sd["conv1.bias"]
        sd["head.0.nope"] = sd["extra"]
        sd["conv1.weight"] = sd["conv1.weight"][:2]
        try:
            net.load_state_dict(sd)
        except RuntimeError as e:
            return str(e)
        raise AssertionError("no error")

    ours = errors(False).replace("nd.Size", "torch.Size").replace("nd.", "torch.")
    assert ours == errors(True)
    net = build()
    sd = net.state_dict()
    del sd["conv1.bias"]
    sd["zzz"] = nd.zeros(1)
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["conv1.bias"] and res.unexpected_keys == ["zzz"]


def test_load_state_dict_assign_and_bad_input():
    net = build()
    sd = {k: v.clone() + 1 for k, v in build().state_dict().items()}
    net.load_state_dict(sd, assign=True)
    assert isinstance(net.conv1.weight, Parameter) and net.conv1.weight.requires_grad
    assert net.conv1.weight._is_view_of(sd["shared.weight"])  # the shared module was assigned last
    assert not isinstance(net.conv1.steps, Parameter)
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([1, 2])


def test_setattr_rules_and_errors_match_torch():
    torch = pytest.importorskip("torch")
    for nn, T in (_lib(False), _lib(True)):
        m = nn.Module()
        m.w = nn.Parameter(T.zeros(1))
        with pytest.raises(TypeError, match="cannot assign '.*' as parameter 'w'"):
            m.w = T.zeros(1)
        m.w = None
        assert "w" in m._parameters and m.w is None
        m.child = nn.Module()
        with pytest.raises(TypeError, match="as child module 'child'"):
            m.child = 3
        m.register_buffer("buf", T.zeros(1))
        m.buf = T.ones(2)  # a plain tensor replaces a buffer
        assert m._buffers["buf"].shape == (2,)
        with pytest.raises(KeyError, match="attribute 'buf' already exists"):
            m.register_parameter("buf", None)
        with pytest.raises(KeyError, match="contain"):
            m.register_buffer("a.b", None)
        with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
            m.nope
        del m.buf
        assert "buf" not in m._buffers
        m.child = nn.Parameter(T.zeros(1))  # re-filed as a parameter
        assert "child" not in m._modules and "child" in m._parameters
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Bad(Module):
            def __init__(self):
                self.w = Parameter(nd.zeros(1))
        Bad()


def test_register_parameter_type_errors():
    m = Module()
    with pytest.raises(TypeError, match="object to parameter 'x'"):
        m.register_parameter("x", nd.zeros(1))
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        Module(foo=1)


def test_train_eval_requires_grad_zero_grad():
    net = build()
    assert net.training
    assert net.eval() is net and not net.blocks[0].training and not net.head[1].training
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    net(nd.ones(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p is not net.extra)
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in net.parameters() if p.grad is not None)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_and_dtype_conversions_keep_parameter_objects():
    net = build()
    net(nd.ones(2, 3)).sum().backward()
    params = list(net.parameters())
    net.double()
    assert list(net.parameters()) == params or all(a is b for a, b in zip(net.parameters(), params))
    assert all(p.dtype == nd.float64 and isinstance(p, Parameter) and p.requires_grad for p in params)
    assert net.conv1.weight.grad.dtype == nd.float64
    assert net.conv1.steps.dtype == nd.int64  # integer buffers keep their dtype
    net.to(nd.float32)
    assert net.conv1.weight.dtype == nd.float32
    net.half()
    assert net.conv1.weight.dtype == nd.float16
    net.to(nd.zeros(1, dtype=nd.float64))
    assert net.conv1.weight.dtype == nd.float64
    net.bfloat16().float()
    assert net.conv1.weight.dtype == nd.float32
    assert net.to("cpu") is net and net.cpu() is net
    with pytest.raises(TypeError, match="floating point"):
        net.to(nd.int32)
    with pytest.raises((ValueError, RuntimeError), match="cuda"):
        net.to("cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        net.cuda()


def test_to_fake_device_and_back():
    from ndcore.testing import register_fake_device
    register_fake_device()
    net = build()
    w = net.conv1.weight
    net.to("fake")
    assert w is net.conv1.weight and w.device.type == "fake" and net.conv1.steps.device.type == "fake"
    net.cpu()
    assert w.device.type == "cpu"
    np.testing.assert_array_equal(w.detach().numpy(), np.full((4, 3), 0.5, np.float32))


def test_apply_and_get_submodule():
    net = build()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Lin") == 5
    assert net.get_submodule("blocks.1") is net.blocks[1]
    assert net.get_parameter("head.0.bias") is net.head[0].bias
    assert net.get_buffer("conv1.steps") is net.conv1.steps
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        net.get_submodule("blocks.nope")
    with pytest.raises(AttributeError, match="is not an nn.Parameter"):
        net.get_parameter("conv1.steps")
    with pytest.raises(AttributeError, match="is not a buffer"):
        net.get_buffer("conv1.weight")


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    assert repr(build()) == repr(build(True))
    assert repr(Module()) == "Module()"


def test_dir_lists_registered_names():
    net = build()
    d = dir(net)
    for name in ("conv1", "extra", "blocks", "forward", "state_dict"):
        assert name in d


def test_forward_hooks_order_and_results_match_torch():
    torch = pytest.importorskip("torch")

    def run(torch_mode):
        nn, T = _lib(torch_mode)
        Lin = make_classes(nn, T)[0]
        m = Lin(2, 2)
        log = []
        m.register_forward_pre_hook(lambda mod, args: log.append("pre1"))
        m.register_forward_pre_hook(lambda mod, args: (log.append("pre0"), None)[1], prepend=True)
        m.register_forward_pre_hook(lambda mod, args, kw: (log.append(f"prekw{sorted(kw)}"), (args, kw))[1],
                                    with_kwargs=True)
        h = m.register_forward_hook(lambda mod, args, out: out * 2)
        m.register_forward_hook(lambda mod, args, kw, out: (log.append("postkw"), out + 1)[1], with_kwargs=True)
        m.register_forward_hook(lambda mod, args, out: log.append("first"), prepend=True)
        out = m(T.ones(1, 2))
        h.remove()
        out2 = m(T.ones(1, 2))
        return log, out.detach().numpy().tolist(), out2.detach().numpy().tolist()

    assert run(False) == run(True)


def test_forward_pre_hook_replaces_args_and_always_call():
    m = Module()
    m.forward = lambda x: x + 1
    m.register_forward_pre_hook(lambda mod, args: args[0] * 10)
    assert float(m(nd.tensor(1.0))) == 11.0

    class Boom(Module):
        def forward(self, x):
            raise ValueError("boom")

    b = Boom()
    called = []
    b.register_forward_hook(lambda mod, args, out: called.append(out), always_call=True)
    b.register_forward_hook(lambda mod, args, out: called.append("never"))
    with pytest.raises(ValueError, match="boom"):
        b(nd.zeros(1))
    assert called == [None]


def test_full_backward_hooks_see_grads_like_torch():
    torch = pytest.importorskip("torch")

    def run(torch_mode):
        nn, T = _lib(torch_mode)
        Lin = make_classes(nn, T)[0]
        m = Lin(3, 2)
        log = []

        def pre(mod, grad_output):
            log.append(("pre", [g.detach().numpy().round(4).tolist() for g in grad_output]))
            return (grad_output[0] * 2,)

        def post(mod, grad_input, grad_output):
            log.append(("post", [g.detach().numpy().round(4).tolist() for g in grad_input],
                        [g.detach().numpy().round(4).tolist() for g in grad_output]))
            return (grad_input[0] + 1,)

        m.register_full_backward_pre_hook(pre)
        m.register_full_backward_hook(post)
        x = T.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        (m(x) * T.tensor([[1.0, -1.0]])).sum().backward()
        return log, x.grad.numpy().round(4).tolist(), m.weight.grad.numpy().round(4).tolist()

    assert run(False) == run(True)


def test_backward_hook_without_input_grad_warns_and_fires():
    Lin = make_classes(ndnn, nd)[0]
    m = Lin(2, 2)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, len(go))))
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        m(nd.ones(1, 2)).sum().backward()
    assert seen == [((None,), 1)]


def test_state_dict_and_load_hooks():
    net = build()
    calls = []
    net.register_state_dict_pre_hook(lambda mod, prefix, keep_vars: calls.append(("pre", prefix)))
    net.register_state_dict_post_hook(lambda mod, sd, prefix, meta: calls.append(("post", len(sd))))
    net.conv1.register_load_state_dict_pre_hook(lambda mod, sd, prefix, *rest: calls.append(("load_pre", prefix)))
    h = net.register_load_state_dict_post_hook(lambda mod, keys: keys.missing_keys.clear())
    sd = net.state_dict()
    del sd["extra"]
    assert net.load_state_dict(sd).missing_keys == []  # the post hook cleared them
    assert calls == [("pre", ""), ("post", 18), ("load_pre", "conv1."), ("load_pre", "shared.")]
    h.remove()
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "extra"'):
        net.load_state_dict(sd)


def test_extra_state_round_trip():
    class WithExtra(Module):
        def __init__(self):
            super().__init__()
            self.value = 1

        def get_extra_state(self):
            return {"value": self.value}

        def set_extra_state(self, state):
            self.value = state["value"]

    a, b = WithExtra(), WithExtra()
    a.value = 7
    sd = a.state_dict()
    assert list(sd) == ["_extra_state"]
    b.load_state_dict(sd)
    assert b.value == 7


def test_deepcopy_gives_independent_parameters():
    net = build()
    net2 = copy.deepcopy(net)
    assert net2.shared is net2.conv1  # sharing preserved
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), net2.named_parameters()):
        assert n1 == n2 and p1 is not p2 and isinstance(p2, Parameter) and p2.requires_grad
        assert not p1._is_view_of(p2)
    with ndgrad.no_grad():
        net2.conv1.weight.fill_(9.0)
    assert float(net.conv1.weight[0, 0]) == 0.5


class PickleNet(Module):
    def __init__(self):
        super().__init__()
        self.w = Parameter(nd.tensor([[1.0, 2.0], [3.0, 4.0]]))
        self.register_buffer("b", nd.tensor([0.5, 0.25]))
        self.inner = ndnn.Sequential(Module())
        self.note = "hello"

    def forward(self, x):
        return x @ self.w + self.b


def test_pickle_round_trip():
    net = PickleNet()
    net.register_forward_hook(_noop_hook)
    net2 = pickle.loads(pickle.dumps(net))
    assert [k for k, _ in net2.named_parameters()] == [k for k, _ in net.named_parameters()]
    assert isinstance(net2.w, Parameter) and net2.note == "hello" and len(net2._forward_hooks) == 1
    np.testing.assert_array_equal(net2(nd.ones(1, 2)).detach().numpy(), net(nd.ones(1, 2)).detach().numpy())


def _noop_hook(mod, args, out):
    return None


def test_share_memory_and_to_empty():
    net = build()
    net.share_memory()
    assert all(p.is_shared() for p in net.parameters())
    net.to_empty(device="cpu")
    assert net.conv1.weight.shape == (4, 3)


def test_global_forward_hook():
    from ndnn.modules.module import register_module_forward_hook
    seen = []
    h = register_module_forward_hook(lambda mod, args, out: seen.append(type(mod).__name__))
    try:
        build()(nd.ones(1, 3))
    finally:
        h.remove()
    assert seen.count("Lin") == 5 and seen[-1] == "Net"
    build()(nd.ones(1, 3))
    assert len(seen) == 7


def test_forward_unimplemented_error():
    with pytest.raises(NotImplementedError, match='Module \\[Module\\] is missing the required "forward"'):
        Module()(1)


def test_module_call_overhead_fast_path():
    # no hooks -> forward directly; hooks dicts stay empty and nothing warns
    m = Module()
    m.forward = lambda x: x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert m(3) == 3


def test_state_dict_positional_form_and_legacy_backward_hook():
    net = build()
    with pytest.warns(FutureWarning, match="Positional args"):
        sd = net.state_dict(None, "p.")
    assert next(iter(sd)) == "p.extra"
    with pytest.raises(NotImplementedError, match="register_full_backward_hook"):
        net.register_backward_hook(lambda *a: None)


def test_gradcheck_through_backward_hooks():
    Lin = make_classes(ndnn, nd)[0]
    m = Lin(3, 2).double()
    m.register_full_backward_pre_hook(lambda mod, go: None)
    m.register_full_backward_hook(lambda mod, gi, go: None)
    x = nd.randn(4, 3, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda inp: m(inp), (x,), eps=1e-6, atol=1e-5, rtol=1e-3)
