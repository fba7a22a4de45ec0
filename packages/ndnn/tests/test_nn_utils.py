"""nd.nn.utils: gradient clipping, parameter vectors, weight norm and spectral norm."""
from __future__ import annotations

import math
import warnings

import ndcore as nd
import ndgrad
import numpy as np
import pytest

from ndnn import Module, Parameter, utils


def _params_with_grads(seed=0, dtype=nd.float32):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    params = []
    for s in shapes:
        p = Parameter(nd.tensor(rng.standard_normal(s), dtype=dtype))
        p.grad = nd.tensor(rng.standard_normal(s) * 3, dtype=dtype)
        params.append(p)
    return params


def _flat_grads(params):
    return np.concatenate([p.grad.numpy().ravel().astype(np.float64) for p in params])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf])
@pytest.mark.parametrize("foreach", [None, False])
def test_clip_grad_norm(norm_type, foreach):
    params = _params_with_grads()
    g = _flat_grads(params)
    ref_total = np.linalg.norm(g, ord=norm_type)
    max_norm = ref_total / 4
    total = utils.clip_grad_norm_(params, max_norm, norm_type=norm_type, foreach=foreach)
    assert isinstance(total, nd.Tensor) and total.dim() == 0
    np.testing.assert_allclose(float(total), ref_total, rtol=1e-5)
    np.testing.assert_allclose(_flat_grads(params), g * (max_norm / (ref_total + 1e-6)), rtol=1e-5)
    # already small enough: untouched (the coefficient is clamped at 1)
    before = _flat_grads(params)
    utils.clip_grad_norm_(params, 1e6, norm_type=norm_type, foreach=foreach)
    np.testing.assert_array_equal(_flat_grads(params), before)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    params = _params_with_grads(dtype=nd.float64)
    tparams = [torch.nn.Parameter(torch.tensor(p.detach().numpy())) for p in params]
    for p, t in zip(params, tparams):
        t.grad = torch.tensor(p.grad.numpy())
    ours = utils.clip_grad_norm_(params, 1.3, norm_type=2.0)
    theirs = torch.nn.utils.clip_grad_norm_(tparams, 1.3, norm_type=2.0)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-12)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_edge_cases():
    p = Parameter(nd.ones(3))
    assert float(utils.clip_grad_norm_([p], 1.0)) == 0.0  # no grads
    assert float(utils.clip_grad_norm_([], 1.0)) == 0.0
    with pytest.warns(UserWarning, match="empty generator"):
        utils.clip_grad_norm_((q for q in []), 1.0)
    p.grad = nd.tensor([3.0, 4.0, 0.0])
    assert float(utils.clip_grad_norm_(p, 1.0)) == pytest.approx(5.0)  # a single tensor
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
    p.grad = nd.tensor([math.inf, 1.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


def test_get_total_norm_and_clip_grads_with_norm():
    params = _params_with_grads(1)
    g = _flat_grads(params)
    total = utils.get_total_norm([p.grad for p in params], 2.0)
    np.testing.assert_allclose(float(total), np.linalg.norm(g), rtol=1e-5)
    utils.clip_grads_with_norm_(params, 2.0, total)
    np.testing.assert_allclose(_flat_grads(params), g * 2.0 / (np.linalg.norm(g) + 1e-6), rtol=1e-5)


def test_clip_grad_value():
    params = _params_with_grads(2)
    g = _flat_grads(params)
    utils.clip_grad_value_(params, 0.7)
    np.testing.assert_allclose(_flat_grads(params), np.clip(g, -0.7, 0.7), rtol=1e-6)


def test_clip_does_not_record_graph():
    p = Parameter(nd.ones(2))
    (p * p).sum().backward()
    utils.clip_grad_norm_([p], 0.1)
    assert p.grad.grad_fn is None and not p.grad.requires_grad


def test_parameters_to_vector_and_back():
    params = _params_with_grads(3)
    vec = utils.parameters_to_vector(params)
    assert vec.shape == (12 + 5 + 8,)
    np.testing.assert_array_equal(vec.detach().numpy(), np.concatenate([p.detach().numpy().ravel() for p in params]))
    new = nd.arange(25, dtype=nd.float32)
    ids = [id(p) for p in params]
    utils.vector_to_parameters(new, params)
    assert [id(p) for p in params] == ids and all(isinstance(p, Parameter) for p in params)
    np.testing.assert_array_equal(params[1].detach().numpy(), np.arange(12, 17))
    assert params[2].shape == (2, 2, 2)
    with pytest.raises(TypeError, match="expected nd.Tensor"):
        utils.vector_to_parameters([1.0], params)
    with pytest.raises(ValueError, match="25 elements"):
        utils.vector_to_parameters(nd.zeros(3), params)


class Lin(Module):
    def __init__(self, i, o, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(nd.tensor(rng.standard_normal((o, i)), dtype=nd.float64))
        self.bias = Parameter(nd.zeros(o, dtype=nd.float64))

    def forward(self, x):
        return x @ self.weight.t() + self.bias


@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm(dim):
    m = Lin(4, 3)
    w0 = m.weight.detach().numpy().copy()
    with pytest.warns(FutureWarning):
        utils.weight_norm(m, dim=dim)
    assert [k for k, _ in m.named_parameters()] == ["bias", "weight_g", "weight_v"]
    if dim == 0:
        np.testing.assert_allclose(m.weight_g.detach().numpy(), np.linalg.norm(w0, axis=1, keepdims=True))
    elif dim == 1:
        assert m.weight_g.shape == (1, 4)
    else:
        assert m.weight_g.dim() == 0
    x = nd.tensor(np.ones((2, 4)), dtype=nd.float64)
    np.testing.assert_allclose(m(x).detach().numpy(), np.ones((2, 4)) @ w0.T, rtol=1e-12)
    with ndgrad.no_grad():
        m.weight_g.mul_(2)
    np.testing.assert_allclose(m(x).detach().numpy(), 2 * np.ones((2, 4)) @ w0.T, rtol=1e-12)
    m(x).sum().backward()
    assert m.weight_g.grad is not None and m.weight_v.grad is not None
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        utils.weight_norm(m, dim=dim)
    utils.remove_weight_norm(m)
    assert [k for k, _ in m.named_parameters()] == ["bias", "weight"]
    np.testing.assert_allclose(m.weight.detach().numpy(), 2 * w0, rtol=1e-12)
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        utils.remove_weight_norm(m)


def test_weight_norm_matches_torch_gradients():
    torch = pytest.importorskip("torch")
    m = Lin(4, 3)
    t = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.detach().numpy()))
        t.bias.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utils.weight_norm(m)
        torch.nn.utils.weight_norm(t)
    x = np.random.default_rng(0).standard_normal((5, 4))
    (m(nd.tensor(x)) ** 2).sum().backward()
    (t(torch.tensor(x)) ** 2).sum().backward()
    np.testing.assert_allclose(m.weight_g.grad.numpy(), t.weight_g.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.weight_v.grad.numpy(), t.weight_v.grad.numpy(), rtol=1e-10)


def test_spectral_norm_converges_to_unit_sigma():
    m = Lin(6, 5, seed=1)
    w0 = m.weight.detach().numpy().copy()
    utils.spectral_norm(m, n_power_iterations=3)
    assert [k for k, _ in m.named_parameters()] == ["bias", "weight_orig"]
    assert [k for k, _ in m.named_buffers()] == ["weight_u", "weight_v"]
    x = nd.tensor(np.ones((1, 6)), dtype=nd.float64)
    for _ in range(30):
        m(x)
    sigma = np.linalg.svd(w0, compute_uv=False)[0]
    np.testing.assert_allclose(m.weight.detach().numpy(), w0 / sigma, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(m.weight_u.numpy()), 1.0, rtol=1e-10)
    # eval mode does no power step: u stays put
    m.eval()
    u = m.weight_u.numpy().copy()
    m(x)
    np.testing.assert_array_equal(m.weight_u.numpy(), u)
    sd = m.state_dict()
    assert list(sd) == ["bias", "weight_orig", "weight_u", "weight_v"]
    assert sd._metadata[""]["spectral_norm"] == {"weight.version": 1}
    m2 = utils.spectral_norm(Lin(6, 5, seed=9))
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2.weight_u.numpy(), u)
    utils.remove_spectral_norm(m)
    assert [k for k, _ in m.named_parameters()] == ["bias", "weight"]
    np.testing.assert_allclose(np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)[0], 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        utils.remove_spectral_norm(m)
    with pytest.raises(ValueError, match="n_power_iterations"):
        utils.spectral_norm(Lin(2, 2), n_power_iterations=0)


def test_spectral_norm_gradient_flows_to_weight_orig():
    m = utils.spectral_norm(Lin(3, 3, seed=2))
    m(nd.tensor(np.ones((2, 3)), dtype=nd.float64)).sum().backward()
    assert m.weight_orig.grad is not None and m.weight_orig.grad.shape == (3, 3)


# ---- parametrize ---------------------------------------------------------------------------
from ndnn.utils import parametrizations, parametrize  # noqa: E402


class Symmetric(Module):
    def forward(self, x):
        return x.triu() + x.triu(1).t()

    def right_inverse(self, a):
        return a.triu()


class Scale(Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s

    def right_inverse(self, x):
        return x / self.s


def test_register_parametrization_basics():
    m = Lin(3, 3)
    w0 = m.weight.detach().numpy().copy()
    parametrize.register_parametrization(m, "weight", Symmetric())
    assert type(m).__name__ == "ParametrizedLin" and parametrize.type_before_parametrizations(m) is Lin
    assert parametrize.is_parametrized(m) and parametrize.is_parametrized(m, "weight")
    assert not parametrize.is_parametrized(m, "bias")
    assert [k for k, _ in m.named_parameters()] == ["bias", "parametrizations.weight.original"]
    w = m.weight.detach().numpy()
    np.testing.assert_allclose(w, np.triu(w0) + np.triu(w0, 1).T)
    new = np.arange(9.0).reshape(3, 3)
    m.weight = nd.tensor(new)  # goes through right_inverse
    np.testing.assert_allclose(m.weight.detach().numpy(), np.triu(new) + np.triu(new, 1).T)
    x = nd.tensor(np.ones((2, 3)))
    m(x).sum().backward()
    assert m.parametrizations.weight.original.grad is not None
    parametrize.register_parametrization(m, "weight", Scale(2.0))  # chained
    np.testing.assert_allclose(m.weight.detach().numpy(), 2 * (np.triu(new) + np.triu(new, 1).T))
    with parametrize.cached():
        assert m.weight is m.weight
    assert m.weight is not m.weight
    sd = m.state_dict()
    assert list(sd) == ["bias", "parametrizations.weight.original"]
    parametrize.remove_parametrizations(m, "weight")
    assert type(m) is Lin and [k for k, _ in m.named_parameters()] == ["bias", "weight"]
    np.testing.assert_allclose(m.weight.detach().numpy(), 2 * (np.triu(new) + np.triu(new, 1).T))
    with pytest.raises(ValueError, match="does not have a parametrization on weight"):
        parametrize.remove_parametrizations(m, "weight")
    with pytest.raises(ValueError, match="does not have a parameter, a buffer"):
        parametrize.register_parametrization(m, "nope", Symmetric())


def test_parametrization_shape_check_and_unsafe():
    class Drop(Module):
        def forward(self, x):
            return x[:1]

    with pytest.raises(ValueError, match="may not change the shape"):
        parametrize.register_parametrization(Lin(3, 2), "weight", Drop())
    m = parametrize.register_parametrization(Lin(3, 2), "weight", Drop(), unsafe=True)
    assert m.weight.shape == (1, 3)


def test_parametrization_names_match_torch():
    torch = pytest.importorskip("torch")
    ours = parametrizations.weight_norm(Lin(4, 3))
    theirs = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(4, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours = parametrizations.spectral_norm(Lin(4, 3))
    theirs = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(4, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [k for k, _ in ours.named_buffers()] == [k for k, _ in theirs.named_buffers()]


def test_parametrizations_weight_norm_and_old_state_dict():
    m = Lin(4, 3)
    w0 = m.weight.detach().numpy().copy()
    parametrizations.weight_norm(m)
    g = m.parametrizations.weight.original0
    assert g.shape == (3, 1)
    np.testing.assert_allclose(g.detach().numpy()[:, 0], np.linalg.norm(w0, axis=1))
    np.testing.assert_allclose(m.weight.detach().numpy(), w0, rtol=1e-12)
    old = Lin(4, 3, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        utils.weight_norm(old)
    m.load_state_dict(old.state_dict())  # weight_g / weight_v keys are renamed by the compat hook
    np.testing.assert_allclose(m.weight.detach().numpy(), old.weight.detach().numpy(), rtol=1e-12)


def test_parametrizations_spectral_norm():
    m = Lin(5, 4, seed=3)
    w0 = m.weight.detach().numpy().copy()
    parametrizations.spectral_norm(m)
    sigma = np.linalg.svd(w0, compute_uv=False)[0]
    for _ in range(20):
        w = m.weight
    np.testing.assert_allclose(w.detach().numpy(), w0 / sigma, rtol=1e-6)
    m.eval()
    u = m.parametrizations.weight[0]._u.numpy().copy()
    m.weight
    np.testing.assert_array_equal(m.parametrizations.weight[0]._u.numpy(), u)
    with pytest.raises(IndexError, match="Dimension out of range"):
        parametrizations.spectral_norm(Lin(2, 2), dim=2)


def _orthonormal_error(w):
    q = w if w.shape[-2] >= w.shape[-1] else np.swapaxes(w, -1, -2)
    return np.abs(np.swapaxes(q, -1, -2) @ q - np.eye(q.shape[-1])).max()


@pytest.mark.parametrize("shape,orth_map,triv", [
    ((5, 5), "matrix_exp", True), ((5, 5), "cayley", True), ((6, 3), "householder", True),
    ((3, 6), "householder", False), ((6, 3), "cayley", True), ((2, 4, 4), "matrix_exp", True),
    ((5, 5), "householder", False)])
def test_orthogonal_stays_orthogonal(shape, orth_map, triv):
    rng = np.random.default_rng(0)
    m = Module()
    m.weight = Parameter(nd.tensor(rng.standard_normal(shape)))
    parametrizations.orthogonal(m, orthogonal_map=orth_map, use_trivialization=triv)
    assert _orthonormal_error(m.weight.detach().numpy()) < 1e-12
    original = m.parametrizations.weight.original
    off = 1.0 - np.eye(shape[-2], shape[-1])  # the diagonal of the Householder map holds fixed signs
    before = m.weight.detach().numpy()
    with ndgrad.no_grad():
        original.add_(nd.tensor(rng.standard_normal(shape) * 0.3 * off))
    after = m.weight.detach().numpy()
    assert _orthonormal_error(after) < 1e-12 and np.abs(after - before).max() > 1e-3
    (m.weight ** 3).sum().backward()
    assert original.grad is not None and np.isfinite(original.grad.numpy()).all()
    q = np.linalg.qr(rng.standard_normal(shape if shape[-2] >= shape[-1] else shape[:-2] + shape[::-1][:2]))[0]
    q = q if shape[-2] >= shape[-1] else np.swapaxes(q, -1, -2)
    m.weight = nd.tensor(q)
    np.testing.assert_allclose(m.weight.detach().numpy(), q, atol=1e-12)


@pytest.mark.parametrize("shape,orth_map,triv", [((4, 4), "matrix_exp", True), ((4, 4), "cayley", True),
                                                  ((6, 3), "householder", False), ((3, 5), "householder", False)])
def test_orthogonal_matches_torch(shape, orth_map, triv):
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(1).standard_normal(shape)
    m = Module()
    m.weight = Parameter(nd.tensor(w))
    parametrizations.orthogonal(m, orthogonal_map=orth_map, use_trivialization=triv)
    t = torch.nn.Module()
    t.weight = torch.nn.Parameter(torch.tensor(w))
    torch.nn.utils.parametrizations.orthogonal(t, orthogonal_map=orth_map, use_trivialization=triv)
    np.testing.assert_allclose(m.weight.detach().numpy(), t.weight.detach().numpy(), atol=1e-10)
    # the same step on the unconstrained parameter moves both the same way
    step = np.random.default_rng(2).standard_normal(shape) * 0.1 * (1.0 - np.eye(*shape))
    with ndgrad.no_grad():
        m.parametrizations.weight.original.add_(nd.tensor(step))
    with torch.no_grad():
        t.parametrizations.weight.original.add_(torch.tensor(step))
    np.testing.assert_allclose(m.weight.detach().numpy(), t.weight.detach().numpy(), atol=1e-10)


def test_orthogonal_errors():
    m = Module()
    m.weight = Parameter(nd.zeros(3))
    with pytest.raises(ValueError, match="Expected a matrix"):
        parametrizations.orthogonal(m)
    m.weight = Parameter(nd.zeros(3, 3))
    with pytest.raises(ValueError, match="orthogonal_map has to be one of"):
        parametrizations.orthogonal(m, orthogonal_map="qr")


def test_gradcheck_weight_norm_and_orthogonal_maps():
    from ndnn.utils.parametrizations import _Orthogonal
    from ndnn.utils.weight_norm import _weight_norm
    rng = np.random.default_rng(4)
    v = nd.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    g = nd.tensor(rng.standard_normal((3, 1)), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, b: _weight_norm(a, b, 0), (v, g), eps=1e-6, atol=1e-5, rtol=1e-3)
    for shape, orth_map in (((4, 4), "matrix_exp"), ((4, 4), "cayley"), ((5, 3), "householder")):
        orth = _Orthogonal(nd.zeros(*shape, dtype=nd.float64), orth_map, use_trivialization=False)
        x = nd.tensor(rng.standard_normal(shape) * 0.5, requires_grad=True)
        assert ndgrad.gradcheck(orth, (x,), eps=1e-6, atol=1e-5, rtol=1e-3)
