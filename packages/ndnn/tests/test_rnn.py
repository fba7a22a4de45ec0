"""RNN, LSTM, GRU and their cells; packed sequences (ndnn.utils.rnn); the fused C++ layer kernels.

References: NumPy single steps, torch.nn when installed (outputs and gradients of inputs and
parameters, weights copied by state_dict), and float64 gradcheck of the fused kernels.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndnn
from ndnn.utils import rnn as rnn_utils


def _np(t):
    return t.detach().numpy()


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _copy_from_torch(tm, m):
    m.load_state_dict({k: nd.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


# ---- NumPy references for one step ------------------------------------------------------------
def test_lstm_cell_matches_numpy_step():
    nd.manual_seed(0)
    cell = ndnn.LSTMCell(3, 4, dtype=nd.float64)
    rng = np.random.default_rng(0)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    hy, cy = cell(nd.tensor(x), (nd.tensor(h), nd.tensor(c)))
    g = x @ _np(cell.weight_ih).T + _np(cell.bias_ih) + h @ _np(cell.weight_hh).T + _np(cell.bias_hh)
    i, f, gg, o = np.split(g, 4, axis=1)
    c_ref = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
    np.testing.assert_allclose(_np(cy), c_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(hy), _sigmoid(o) * np.tanh(c_ref), rtol=1e-12, atol=1e-12)


def test_gru_cell_matches_numpy_step():
    nd.manual_seed(1)
    cell = ndnn.GRUCell(3, 4, dtype=nd.float64)
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    hy = cell(nd.tensor(x), nd.tensor(h))
    gi = x @ _np(cell.weight_ih).T + _np(cell.bias_ih)
    gh = h @ _np(cell.weight_hh).T + _np(cell.bias_hh)
    r = _sigmoid(gi[:, :4] + gh[:, :4])
    z = _sigmoid(gi[:, 4:8] + gh[:, 4:8])
    n = np.tanh(gi[:, 8:] + r * gh[:, 8:])
    np.testing.assert_allclose(_np(hy), (1 - z) * n + z * h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_single_layer_sequence_matches_numpy_loop(mode):
    """The fused kernels (LSTM/GRU) and the per-step path (RNN) against a NumPy time loop, float32."""
    nd.manual_seed(2)
    m = getattr(ndnn, mode)(5, 6)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 3, 5)).astype(np.float32)
    out, hn = m(nd.tensor(x))
    w_ih, w_hh, b_ih, b_hh = (_np(getattr(m, n)).astype(np.float64)
                              for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    h, c, ref = np.zeros((3, 6)), np.zeros((3, 6)), []
    for t in range(7):
        gi, gh = x[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if mode == "LSTM":
            i, f, g, o = np.split(gi + gh, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        elif mode == "GRU":
            r, z = _sigmoid(gi[:, :6] + gh[:, :6]), _sigmoid(gi[:, 6:12] + gh[:, 6:12])
            n = np.tanh(gi[:, 12:] + r * gh[:, 12:])
            h = (1 - z) * n + z * h
        else:
            h = np.tanh(gi + gh)
        ref.append(h)
    np.testing.assert_allclose(_np(out), np.stack(ref), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(_np(hn[0] if mode == "LSTM" else hn)[0], ref[-1], rtol=1e-5, atol=2e-6)


# ---- module structure ---------------------------------------------------------------------------
def test_parameter_names_shapes_and_init_range():
    nd.manual_seed(3)
    m = ndnn.LSTM(4, 8, num_layers=2, bidirectional=True, proj_size=3)
    names = [n for n, _ in m.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"]
    assert "weight_hh_l1_reverse" in names and len(names) == 20
    assert tuple(m.weight_ih_l1.shape) == (32, 6) and tuple(m.weight_hh_l0.shape) == (32, 3)
    assert tuple(m.weight_hr_l0_reverse.shape) == (3, 8)
    bound = 1 / np.sqrt(8)
    for p in m.parameters():
        v = _np(p)
        assert np.all(np.abs(v) <= bound) and v.std() > bound / 4
    assert len(m.all_weights) == 4 and m.all_weights[1][0] is m.weight_ih_l0_reverse
    m.flatten_parameters()
    assert repr(m) == "LSTM(4, 8, proj_size=3, num_layers=2, bidirectional=True)"
    g = ndnn.GRU(4, 8, bias=False)
    assert [n for n, _ in g.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


def test_constructor_and_input_errors():
    with pytest.raises(ValueError, match="proj_size has to be smaller"):
        ndnn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        ndnn.RNNBase("GRU", 3, 4, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        ndnn.RNN(3, 4, nonlinearity="gelu")
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        ndnn.GRU(3, 4, dropout=0.5)
    m = ndnn.LSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="input_size. Expected 3, got 5"):
        m(nd.zeros(2, 1, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 1, 4\), got \[1, 1, 4\]"):
        m(nd.zeros(2, 1, 3), (nd.zeros(1, 1, 4), nd.zeros(2, 1, 4)))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D"):
        m(nd.zeros(2, 1, 1, 3))
    with pytest.raises(ValueError, match="does not match weight dtype"):
        m(nd.zeros(2, 1, 3, dtype=nd.float64))
    with pytest.raises(RuntimeError, match="inconsistent input_size"):
        ndnn.GRUCell(3, 4)(nd.zeros(2, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(2, 4\)"):
        ndnn.LSTMCell(3, 4)(nd.zeros(2, 3), (nd.zeros(3, 4), nd.zeros(3, 4)))
    with pytest.raises(ValueError, match=r"\[_lstm_layer\] expected w_hh of shape"):
        nd._C._lstm_layer(nd.zeros(2, 1, 8), nd.zeros(1, 2), nd.zeros(1, 2), nd.zeros(8, 8), nd.zeros(8, 3), None, None,
                          False)
    with pytest.raises(TypeError, match=r"\[_gru_layer\] expected float32 or float64"):
        nd._C._gru_layer(nd.zeros(2, 1, 6, dtype=nd.int32), nd.zeros(1, 2, dtype=nd.int32),
                         nd.zeros(6, 2, dtype=nd.int32), nd.zeros(6, dtype=nd.int32), False)


def test_unbatched_input_and_zero_length():
    nd.manual_seed(4)
    m = ndnn.GRU(3, 4, num_layers=2)
    x = nd.randn(5, 3)
    out, hn = m(x)
    assert tuple(out.shape) == (5, 4) and tuple(hn.shape) == (2, 4)
    out_b, hn_b = m(x.unsqueeze(1))
    np.testing.assert_allclose(_np(out), _np(out_b)[:, 0], rtol=1e-6)
    with pytest.raises(RuntimeError, match="hx should also be 2-D"):
        m(x, nd.zeros(2, 1, 4))
    out, (hn, cn) = ndnn.LSTM(3, 4)(nd.zeros(0, 2, 3))
    assert tuple(out.shape) == (0, 2, 4) and float(hn.abs().sum()) == 0


def test_dropout_between_layers_only_in_training():
    nd.manual_seed(5)
    m = ndnn.LSTM(3, 16, num_layers=2, dropout=0.5)
    x = nd.randn(4, 2, 3)
    m.eval()
    a, b = m(x)[0], m(x)[0]
    np.testing.assert_array_equal(_np(a), _np(b))
    m.train()
    assert not np.allclose(_np(m(x)[0]), _np(a))


# ---- gradcheck of the fused kernels and the per-step path --------------------------------------
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_float64(mode, bidirectional):
    nd.manual_seed(6)
    m = getattr(ndnn, mode)(2, 3, bidirectional=bidirectional, dtype=nd.float64)
    D = 2 if bidirectional else 1
    x = nd.randn(3, 2, 2, dtype=nd.float64, requires_grad=True)
    h0 = nd.randn(D, 2, 3, dtype=nd.float64, requires_grad=True)
    c0 = nd.randn(D, 2, 3, dtype=nd.float64, requires_grad=True)
    w_hh, b_ih = m.weight_hh_l0, m.bias_ih_l0

    if mode == "LSTM":
        def f(x, h0, c0, w_hh, b_ih):
            out, (hn, cn) = m(x, (h0, c0))
            return out, hn, cn
        assert ndgrad.gradcheck(f, (x, h0, c0, w_hh, b_ih))
    else:
        def f(x, h0, w_hh, b_ih):
            out, hn = m(x, h0)
            return out, hn
        assert ndgrad.gradcheck(f, (x, h0, w_hh, b_ih))


# ---- torch comparisons ------------------------------------------------------------------------
def _compare_with_torch(torch, tm, m, x, hx=None, batch_first=False, rtol=1e-10, atol=1e-10):
    tx = torch.tensor(x, requires_grad=True)
    nx = nd.tensor(x, requires_grad=True)
    targs, nargs = (tx,), (nx,)
    if hx is not None:
        th = tuple(torch.tensor(h, requires_grad=True) for h in hx)
        nh = tuple(nd.tensor(h, requires_grad=True) for h in hx)
        targs += (th if len(th) == 2 else th[0],)
        nargs += (nh if len(nh) == 2 else nh[0],)
    to, tstate = tm(*targs)
    no, nstate = m(*nargs)
    tstate = tstate if isinstance(tstate, tuple) else (tstate,)
    nstate = nstate if isinstance(nstate, tuple) else (nstate,)
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=rtol, atol=atol)
    for a, b in zip(nstate, tstate):
        np.testing.assert_allclose(_np(a), b.detach().numpy(), rtol=rtol, atol=atol)
    rng = np.random.default_rng(0)
    go = rng.normal(size=tuple(to.shape))
    gs = [rng.normal(size=tuple(s.shape)) for s in tstate]
    torch.autograd.backward([to] + list(tstate), [torch.tensor(go, dtype=to.dtype)] +
                            [torch.tensor(g, dtype=to.dtype) for g in gs])
    ndgrad.backward([no] + list(nstate), [nd.tensor(go, dtype=no.dtype)] + [nd.tensor(g, dtype=no.dtype) for g in gs])
    np.testing.assert_allclose(_np(nx.grad), tx.grad.numpy(), rtol=rtol * 10, atol=atol * 10)
    if hx is not None:
        for a, b in zip(nh, th):
            np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), rtol=rtol * 10, atol=atol * 10)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(_np(getattr(m, name).grad), p.grad.numpy(), rtol=rtol * 10, atol=atol * 10,
                                   err_msg=name)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_tanh", "RNN_relu"])
@pytest.mark.parametrize("config", [dict(), dict(num_layers=2, bidirectional=True), dict(batch_first=True, bias=False),
                                    dict(num_layers=3, batch_first=True, bidirectional=True)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_matches_torch_float64(mode, config, with_hx):
    torch = pytest.importorskip("torch")
    kind, _, nl = mode.partition("_")
    extra = {"nonlinearity": nl} if nl else {}
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(4, 5, **config, **extra).double()
    m = getattr(ndnn, kind)(4, 5, **config, **extra, dtype=nd.float64)
    _copy_from_torch(tm, m)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 4) if config.get("batch_first") else (6, 3, 4))
    hx = None
    if with_hx:
        L = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
        hx = (rng.normal(size=(L, 3, 5)),) * (2 if kind == "LSTM" else 1)
        hx = tuple(h.copy() for h in hx)
    _compare_with_torch(torch, tm, m, x, hx)


def test_lstm_proj_size_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3).double()
    m = ndnn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3, dtype=nd.float64)
    _copy_from_torch(tm, m)
    rng = np.random.default_rng(2)
    _compare_with_torch(torch, tm, m, rng.normal(size=(5, 2, 4)), (rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 6))))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("hidden,batch", [(16, 4), (20, 7), (72, 12), (100, 23)])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_float32_matches_torch(mode, hidden, batch, threads):
    """float32 runs the vectorised gate math and the small-batch GEMM tiles (5-row tiles, 16- and
    64-unit blocks; these sizes leave row and unit remainders). At (100, 23) the LSTM's steps are
    large enough to be shared by two threads (csrc/kernels/rnn_fast.cpp)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    tm = getattr(torch.nn, mode)(8, hidden, num_layers=2, bidirectional=True)
    m = getattr(ndnn, mode)(8, hidden, num_layers=2, bidirectional=True)
    _copy_from_torch(tm, m)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, batch, 8)).astype(np.float32)
    hx = [rng.normal(size=(4, batch, hidden)).astype(np.float32) for _ in range(2 if mode == "LSTM" else 1)]
    before = nd.get_num_threads()
    nd.set_num_threads(threads)
    try:
        _compare_with_torch(torch, tm, m, x, hx, rtol=2e-5, atol=2e-6)
    finally:
        nd.set_num_threads(before)


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_training_step_shape_matches_torch(batch_first):
    """The benchmark's layer (64 -> 256, batch 20): outputs, final states and every gradient."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    tm = torch.nn.LSTM(64, 256, batch_first=batch_first)
    m = ndnn.LSTM(64, 256, batch_first=batch_first)
    _copy_from_torch(tm, m)
    x = np.random.default_rng(5).normal(size=(20, 12, 64) if batch_first else (12, 20, 64)).astype(np.float32)
    _compare_with_torch(torch, tm, m, x, rtol=5e-5, atol=5e-6)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_matches_torch(mode, enforce_sorted):
    torch = pytest.importorskip("torch")
    from torch.nn.utils import rnn as trnn
    torch.manual_seed(3)
    tm = getattr(torch.nn, mode)(3, 4, num_layers=2, bidirectional=True).double()
    m = getattr(ndnn, mode)(3, 4, num_layers=2, bidirectional=True, dtype=nd.float64)
    _copy_from_torch(tm, m)
    lengths = [5, 3, 3, 1] if enforce_sorted else [2, 5, 1, 4]
    x = np.random.default_rng(4).normal(size=(5, 4, 3))
    tx, nx = torch.tensor(x, requires_grad=True), nd.tensor(x, requires_grad=True)
    tp = trnn.pack_padded_sequence(tx, lengths, enforce_sorted=enforce_sorted)
    np_ = rnn_utils.pack_padded_sequence(nx, lengths, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(np_.batch_sizes.numpy(), tp.batch_sizes.numpy())
    np.testing.assert_allclose(_np(np_.data), tp.data.detach().numpy())
    to, th = tm(tp)
    no, nh = m(np_)
    assert isinstance(no, rnn_utils.PackedSequence)
    th = th[0] if mode == "LSTM" else th
    nh = nh[0] if mode == "LSTM" else nh
    np.testing.assert_allclose(_np(no.data), to.data.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(nh), th.detach().numpy(), rtol=1e-10, atol=1e-12)
    tpad, tlen = trnn.pad_packed_sequence(to, batch_first=True, total_length=6)
    npad, nlen = rnn_utils.pad_packed_sequence(no, batch_first=True, total_length=6)
    np.testing.assert_allclose(_np(npad), tpad.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(nlen.numpy(), tlen.numpy())
    (tpad.sum() + (th * th).sum()).backward()
    (npad.sum() + (nh * nh).sum()).backward()
    np.testing.assert_allclose(_np(nx.grad), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(_np(getattr(m, name).grad), p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    tm = getattr(torch.nn, kind)(3, 4).double()
    m = getattr(ndnn, kind)(3, 4, dtype=nd.float64)
    _copy_from_torch(tm, m)
    rng = np.random.default_rng(5)
    for shape in [(2, 3), (3,)]:
        x = rng.normal(size=shape)
        tx, nx = torch.tensor(x, requires_grad=True), nd.tensor(x, requires_grad=True)
        to, no = tm(tx), m(nx)
        to = to[0] + 2 * to[1] if kind == "LSTMCell" else to
        no = no[0] + 2 * no[1] if kind == "LSTMCell" else no
        np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-12, atol=1e-12)
        to.sum().backward()
        no.sum().backward()
        np.testing.assert_allclose(_np(nx.grad), tx.grad.numpy(), rtol=1e-11, atol=1e-12)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(_np(getattr(m, name).grad), p.grad.numpy(), rtol=1e-11, atol=1e-12)


# ---- packing utilities --------------------------------------------------------------------------
def test_pack_pad_round_trip_numpy():
    rng = np.random.default_rng(6)
    seqs = [rng.normal(size=(n, 2)).astype(np.float32) for n in (2, 4, 1)]
    padded = rnn_utils.pad_sequence([nd.tensor(s) for s in seqs], batch_first=True, padding_value=-1.0)
    ref = np.full((3, 4, 2), -1.0, np.float32)
    for i, s in enumerate(seqs):
        ref[i, :len(s)] = s
    np.testing.assert_array_equal(padded.numpy(), ref)
    left = rnn_utils.pad_sequence([nd.tensor(s) for s in seqs], padding_side="left")
    assert tuple(left.shape) == (4, 3, 2)
    np.testing.assert_array_equal(left.numpy()[:, 0], np.concatenate([np.zeros((2, 2), np.float32), seqs[0]]))
    packed = rnn_utils.pack_sequence([nd.tensor(s) for s in seqs], enforce_sorted=False)
    assert packed.batch_sizes.tolist() == [3, 2, 1, 1]
    np.testing.assert_array_equal(packed.data.numpy()[:3], np.stack([seqs[1][0], seqs[0][0], seqs[2][0]]))
    back = rnn_utils.unpack_sequence(packed)
    for a, b in zip(back, seqs):
        np.testing.assert_array_equal(a.numpy(), b)
    unpadded = rnn_utils.unpad_sequence(padded, nd.tensor([2, 4, 1]), batch_first=True)
    for a, b in zip(unpadded, seqs):
        np.testing.assert_array_equal(a.numpy(), b)
    p64 = packed.to(nd.float64)
    assert isinstance(p64, rnn_utils.PackedSequence) and p64.data.dtype == nd.float64
    assert p64.sorted_indices.tolist() == [1, 0, 2] and p64.unsorted_indices.tolist() == [1, 0, 2]


def test_pack_errors():
    x = nd.zeros(3, 2, 1)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        rnn_utils.pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match="greater than 0"):
        rnn_utils.pack_padded_sequence(x, [3, 0])
    packed = rnn_utils.pack_padded_sequence(x, [3, 2])
    with pytest.raises(ValueError, match="total_length"):
        rnn_utils.pad_packed_sequence(packed, total_length=2)
    with pytest.raises(ValueError, match="padding_side"):
        rnn_utils.pad_sequence([x], padding_side="middle")


def test_pack_padded_sequence_gradient():
    x = nd.tensor(np.arange(12.0).reshape(3, 2, 2), requires_grad=True)
    packed = rnn_utils.pack_padded_sequence(x, [3, 1])
    (packed.data * nd.tensor([[1.0, 2.0]])).sum().backward()
    g = np.zeros((3, 2, 2))
    g[:, 0] = [1.0, 2.0]
    g[0, 1] = [1.0, 2.0]
    np.testing.assert_array_equal(x.grad.numpy(), g)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_fused_layer_output_freed_with_graph(mode):
    """The fused Functions save a detached alias of their output, so the output (and its ~T*B*H
    storage) dies with the graph; saving the output itself kept it alive for good."""
    import gc
    import weakref

    m = getattr(ndnn, mode)(3, 4)
    out, _ = m(nd.randn(5, 2, 3))
    ref = weakref.ref(out)
    del out, _
    gc.collect()
    assert ref() is None
