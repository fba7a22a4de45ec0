"""Recurrent layers: RNN, LSTM, GRU (multi-layer, bidirectional, packed sequences) and their cells.

LSTM and GRU layers on float32/float64 CPU padded input run one fused C++ call per layer and
direction (See Note [Fused recurrent layers] in ndcore's csrc/kernels/rnn.cpp): an LSTM call
takes the layer input and both weights, a GRU call its input projection, done by one GEMM.
Everything else (RNN, LSTM with ``proj_size``, packed sequences, other dtypes/devices) projects
the whole input with one GEMM, then runs one ``addmm`` plus the gate math per step. Parameter
names, shapes, gate orders and initialisation follow torch.
"""
from __future__ import annotations

import math
import numbers
import warnings

import ndcore as nd
import ndgrad
from ndcore import _C

from .. import init
from ..amp import _lowering_dtype, autocast
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# ---- fused layers (one autograd node per layer and direction) ----------------------------------
class _FusedLSTM(ndgrad.Function):
    """One LSTM layer and direction, input projection included (Note [Fused recurrent layers])."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
        out, hn, cn, gates, cells = _C._lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
        ctx.reverse = reverse
        ctx.has_bias = b_ih is not None
        # a detached alias, not the output itself: ndgrad keeps a saved output alive past the
        # graph (its storage, ~T*B*H, was never freed)
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, out.detach(), gates, cells)
        return out, hn, cn

    @staticmethod
    @ndgrad.once_differentiable
    def backward(ctx, grad_out, grad_hn, grad_cn):
        x, h0, c0, w_ih, w_hh, out, gates, cells = ctx.saved_tensors
        g = _C._lstm_layer_backward(grad_out, grad_hn, grad_cn, x, h0, c0, w_ih, w_hh, out, gates, cells,
                                    ctx.reverse, ctx.has_bias, ctx.needs_input_grad[0])
        return (*g, None)


class _FusedGRU(ndgrad.Function):
    @staticmethod
    def forward(ctx, gates_x, h0, w_hh, b_hh, reverse):
        out, hn, gates, hidden_n = _C._gru_layer(gates_x, h0, w_hh, b_hh, reverse)
        ctx.reverse = reverse
        ctx.save_for_backward(h0, w_hh, out.detach(), gates, hidden_n)  # detached: see _FusedLSTM
        return out, hn

    @staticmethod
    @ndgrad.once_differentiable
    def backward(ctx, grad_out, grad_hn):
        h0, w_hh, out, gates, hidden_n = ctx.saved_tensors
        g = _C._gru_layer_backward(grad_out, grad_hn, h0, w_hh, out, gates, hidden_n, ctx.reverse)
        return g[0], g[1], g[2], g[3], None


# ---- per-step cell math (shared by the layers' generic path and the cells) ---------------------
def _lstm_step(gx, state, w_hh, w_hr):
    h, c = state
    i, f, g, o = nd.addmm(gx, h, w_hh.t()).chunk(4, 1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h = o.sigmoid() * c.tanh()
    if w_hr is not None:
        h = h.mm(w_hr.t())
    return h, c


def _gru_step(gx, state, w_hh, b_hh):
    (h,) = state
    gh = h.mm(w_hh.t()) if b_hh is None else nd.addmm(b_hh, h, w_hh.t())
    xr, xz, xn = gx.chunk(3, 1)
    hr, hz, hn = gh.chunk(3, 1)
    r = (xr + hr).sigmoid()
    z = (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return (n + z * (h - n),)


def _rnn_step(gx, state, w_hh, relu):
    pre = nd.addmm(gx, state[0], w_hh.t())
    return (pre.relu() if relu else pre.tanh(),)


def _input_projection(x2d, w_ih, bias):
    return x2d.mm(w_ih.t()) if bias is None else nd.addmm(bias, x2d, w_ih.t())


def _run_steps(step, gx, batch_sizes, state, reverse):
    """Runs ``step`` over packed rows ``gx`` (``batch_sizes[t]`` rows at step t, sorted batch).

    Returns (outputs in packed order, final state per sequence). Sequences end at different
    steps: going forward the batch shrinks and the finished rows are set aside; going backward
    it grows and each sequence starts from its own initial state.
    """
    T = len(batch_sizes)
    offsets = [0]
    for bs in batch_sizes:
        offsets.append(offsets[-1] + bs)
    outs = []
    if not reverse:
        done = []
        cur = state
        last = batch_sizes[0] if T else 0
        for t in range(T):
            bs = batch_sizes[t]
            if bs < last:
                done.append(tuple(s[bs:last] for s in cur))
                cur = tuple(s[:bs] for s in cur)
            cur = step(gx[offsets[t]:offsets[t + 1]], cur)
            outs.append(cur[0])
            last = bs
        done.append(cur)
        final = cur if len(done) == 1 else tuple(nd.cat([d[k] for d in reversed(done)], 0) for k in range(len(cur)))
    else:
        last = batch_sizes[-1] if T else 0
        cur = tuple(s[:last] for s in state)
        for t in reversed(range(T)):
            bs = batch_sizes[t]
            if bs > last:
                cur = tuple(nd.cat([c, s[last:bs]], 0) for c, s in zip(cur, state))
            cur = step(gx[offsets[t]:offsets[t + 1]], cur)
            outs.append(cur[0])
            last = bs
        outs.reverse()
        final = cur
    out = nd.cat(outs, 0) if outs else nd.zeros(0, state[0].shape[1], dtype=gx.dtype, device=gx.device)
    return out, final


def _autocast_lowering(x, weight):
    """The autocast dtype when autocast is on for ``x``'s device and would lower this module's
    float32 work (torch's CPU autocast lowers float32 only); None otherwise."""
    return _lowering_dtype(x.device.type) if weight.dtype == nd.float32 else None


def _cast(t, dtype):
    return t if t is None or t.dtype == dtype else t.to(dtype)


def _cast_state(hx, dtype):
    if hx is None:
        return None
    return tuple(_cast(h, dtype) for h in hx) if isinstance(hx, (tuple, list)) else _cast(hx, dtype)


def _without_autocast(module, input, hx):
    """Runs ``module.forward`` in its weights' dtype with autocast suspended (inputs and states
    cast to it). nd's fused recurrent kernels compute in float32/float64, so under autocast a
    recurrent module rounds its results afterwards instead of lowering each op inside it."""
    w = module.weight_ih_l0.dtype if isinstance(module, RNNBase) else module.weight_ih.dtype
    if isinstance(input, PackedSequence):
        input = PackedSequence(_cast(input.data, w), input.batch_sizes, input.sorted_indices, input.unsorted_indices)
    else:
        input = _cast(input, w)
    with autocast(input.data.device.type if isinstance(input, PackedSequence) else input.device.type,
                      enabled=False):
        return module.forward(input, _cast_state(hx, w))


class RNNBase(Module):
    """Base class of RNN, LSTM and GRU: owns the per-layer, per-direction parameters.

    Args:
        mode: ``'LSTM'``, ``'GRU'``, ``'RNN_TANH'`` or ``'RNN_RELU'``.
        input_size: Features of the input.
        hidden_size: Features of the hidden state.
        num_layers: Stacked recurrent layers.
        bias: Whether the layers have ``bias_ih``/``bias_hh``.
        batch_first: Input and output are ``(B, T, *)`` instead of ``(T, B, *)``.
        dropout: Dropout on the outputs of every layer but the last (training only).
        bidirectional: Run a reverse direction too and concatenate the features.
        proj_size: LSTM only: project the hidden state to this size (``weight_hr``).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element "
                             "being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=2)
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        num_directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        kw = {"device": device, "dtype": dtype if dtype is not None else nd.get_default_dtype()}
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_in = input_size if layer == 0 else real_hidden * num_directions
                sfx = "_reverse" if direction == 1 else ""
                params = [(f"weight_ih_l{layer}{sfx}", (gate_size, layer_in)),
                          (f"weight_hh_l{layer}{sfx}", (gate_size, real_hidden))]
                if bias:
                    params += [(f"bias_ih_l{layer}{sfx}", (gate_size,)), (f"bias_hh_l{layer}{sfx}", (gate_size,))]
                if proj_size > 0:
                    params.append((f"weight_hr_l{layer}{sfx}", (proj_size, hidden_size)))
                for name, shape in params:
                    setattr(self, name, Parameter(nd.empty(*shape, **kw)))
                self._flat_weights_names.extend(n for n, _ in params)
                self._all_weights.append([n for n, _ in params])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op: parameters are used in place (torch compacts them for cuDNN)."""

    @property
    def _flat_weights(self):
        return [getattr(self, n, None) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ---- forward machinery ----------------------------------------------------------------------
    def _layer_params(self, layer, direction):
        sfx = "_reverse" if direction == 1 else ""
        get = lambda n: getattr(self, f"{n}_l{layer}{sfx}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _check_input(self, x, batch_sizes):
        expected = 2 if batch_sizes is not None else 3
        if x.dim() != expected:
            raise ValueError(f"[{type(self).__name__}] input must have {expected} dimensions, got {x.dim()}")
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"[{type(self).__name__}] input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {x.shape[-1]}")
        w = self.weight_ih_l0
        if x.dtype != w.dtype:
            raise ValueError(f"[{type(self).__name__}] input dtype ({x.dtype}) does not match weight dtype "
                             f"({w.dtype}). Convert input: input.to({w.dtype}), or convert model: model.to({x.dtype})")

    def _check_hidden(self, h, expected, what="hidden"):
        if tuple(h.shape) != tuple(expected):
            raise RuntimeError(f"[{type(self).__name__}] Expected {what} size {tuple(expected)}, got {list(h.shape)}")

    def _run(self, x, batch_sizes, states):
        """x: (T, B, I) padded or (N, I) packed; states: tuple of (L*D, B, *). Returns (out, finals)."""
        D = 2 if self.bidirectional else 1
        fused = batch_sizes is None and self.mode in ("LSTM", "GRU") and self.proj_size == 0 and \
            x.device.type == "cpu" and x.dtype in (nd.float32, nd.float64)
        if batch_sizes is None:
            T, B = x.shape[0], x.shape[1]
            sizes = [B] * T
        else:
            sizes = [int(v) for v in batch_sizes.tolist()]
        finals = [[] for _ in states]
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = layer * D + d
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, d)
                init_state = tuple(s[idx] for s in states)
                if fused and self.mode == "LSTM":
                    out, hn, cn = _FusedLSTM.apply(layer_in, init_state[0], init_state[1], w_ih, w_hh, b_ih, b_hh,
                                                   d == 1)
                    final = (hn, cn)
                elif fused:  # GRU: b_hn sits inside the reset gate's product, so only b_ih joins gx
                    gx = _input_projection(layer_in.reshape(-1, layer_in.shape[-1]), w_ih, b_ih).reshape(T, B, -1)
                    b = b_hh if b_hh is not None else nd.zeros(w_hh.shape[0], dtype=w_hh.dtype, device=w_hh.device)
                    out, hn = _FusedGRU.apply(gx, init_state[0], w_hh, b, d == 1)
                    final = (hn,)
                else:
                    x2d = layer_in.reshape(-1, layer_in.shape[-1])
                    if self.mode == "GRU":
                        bias = b_ih
                    else:
                        bias = None if b_ih is None else b_ih + b_hh
                    gx = _input_projection(x2d, w_ih, bias)
                    if self.mode == "LSTM":
                        step = lambda g, s, w=w_hh, r=w_hr: _lstm_step(g, s, w, r)  # noqa: E731
                    elif self.mode == "GRU":
                        step = lambda g, s, w=w_hh, b=b_hh: _gru_step(g, s, w, b)  # noqa: E731
                    else:
                        relu = self.mode == "RNN_RELU"
                        step = lambda g, s, w=w_hh, r=relu: _rnn_step(g, s, w, r)  # noqa: E731
                    out, final = _run_steps(step, gx, sizes, init_state, d == 1)
                    if batch_sizes is None:
                        out = out.reshape(T, B, out.shape[-1])
                outs.append(out)
                for k, f in enumerate(final):
                    finals[k].append(f)
            layer_in = outs[0] if D == 1 else nd.cat(outs, -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                from ..functional import dropout
                layer_in = dropout(layer_in, self.dropout, True)
        return layer_in, tuple(nd.stack(f, 0) for f in finals)

    def _state_shapes(self, B):
        D = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        shapes = [(self.num_layers * D, B, real_hidden)]
        if self.mode == "LSTM":
            shapes.append((self.num_layers * D, B, self.hidden_size))
        return shapes

    def forward(self, input, hx=None):
        """Runs the stack over ``input``; returns ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``).

        Args:
            input: ``(T, B, input_size)`` (``(B, T, ...)`` if batch_first), unbatched ``(T, input_size)``,
                or a PackedSequence.
            hx: Initial hidden state ``(num_layers * num_directions, B, H_out)`` (LSTM: a tuple
                ``(h_0, c_0)``); zeros when omitted.
        """
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        is_lstm = self.mode == "LSTM"
        lower = _autocast_lowering(input.data if packed else input, self.weight_ih_l0)
        if lower is not None:
            # The dtypes torch's results take under CPU autocast: its LSTM on padded input (one
            # oneDNN layer) and the per-step linear ops of RNN and of LSTM with proj_size run
            # lowered; GRU and a packed LSTM without projections stay in float32 unless fed
            # lowered input; with proj_size c_n stays float32 unless so fed.
            fed_lower = (input.data if packed else input).dtype == lower
            output, state = _without_autocast(self, input, hx)
            if not (fed_lower or self.mode.startswith("RNN") or (is_lstm and (not packed or self.proj_size > 0))):
                return output, state
            if packed:
                output = PackedSequence(output.data.to(lower), output.batch_sizes, output.sorted_indices,
                                        output.unsorted_indices)
            else:
                output = output.to(lower)
            if is_lstm:
                keep_c = self.proj_size > 0 and not fed_lower
                return output, (state[0].to(lower), state[1] if keep_c else state[1].to(lower))
            return output, state.to(lower)
        if packed:
            x, batch_sizes = input.data, input.batch_sizes
            B = int(batch_sizes[0]) if batch_sizes.numel() else 0
            unbatched = False
            sorted_indices, unsorted_indices = input.sorted_indices, input.unsorted_indices
        else:
            x, batch_sizes = input, None
            sorted_indices = unsorted_indices = None
            if x.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {x.dim()}D instead")
            unbatched = x.dim() == 2
            if unbatched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
            B = x.shape[1]
        self._check_input(x, batch_sizes)
        hs = self._state_shapes(B)
        if hx is None:
            states = tuple(nd.zeros(*s, dtype=x.dtype, device=x.device) for s in hs)
        else:
            states = tuple(hx) if is_lstm else (hx,)
            if is_lstm and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise TypeError(f"[{name}] hx must be a tuple (h_0, c_0) of tensors")
            if not is_lstm and not isinstance(hx, nd.Tensor):
                raise TypeError(f"[{name}] hx must be a Tensor, got {type(hx).__name__}")
            if unbatched:
                for s in states:
                    if s.dim() != 2:
                        raise RuntimeError(f"[{name}] For unbatched 2-D input, hx should also be 2-D but got "
                                           f"{s.dim()}-D tensor")
                states = tuple(s.unsqueeze(1) for s in states)
            else:
                for s in states:
                    if s.dim() != 3:
                        raise RuntimeError(f"[{name}] For batched 3-D input, hx should also be 3-D but got "
                                           f"{s.dim()}-D tensor")
            if sorted_indices is not None:
                states = tuple(s.index_select(1, sorted_indices) for s in states)
            for s, shape, what in zip(states, hs, ("hidden[0]", "hidden[1]") if is_lstm else ("hidden",)):
                self._check_hidden(s, shape, what)
                if s.dtype != x.dtype:
                    raise ValueError(f"[{name}] {what} dtype {s.dtype} does not match input dtype {x.dtype}")
        out, finals = self._run(x, batch_sizes, states)
        if unsorted_indices is not None:
            finals = tuple(f.index_select(1, unsorted_indices) for f in finals)
        if packed:
            output = PackedSequence(out, batch_sizes, sorted_indices, unsorted_indices)
        elif unbatched:
            output = out.squeeze(1)
            finals = tuple(f.squeeze(1) for f in finals)
        else:
            output = out.transpose(0, 1) if self.batch_first else out
        return (output, finals) if is_lstm else (output, finals[0])


class RNN(RNNBase):
    r"""Elman RNN: :math:`h_t = \tanh(x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh})` (or ReLU).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: see RNNBase.
        nonlinearity: ``'tanh'`` or ``'relu'``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class LSTM(RNNBase):
    r"""Long short-term memory:

    .. math::
        i, f, g, o = \sigma, \sigma, \tanh, \sigma\ (x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh}) \\
        c_t = f \odot c_{t-1} + i \odot g, \quad h_t = o \odot \tanh(c_t)

    (then :math:`h_t W_{hr}^T` when ``proj_size`` > 0).

    Args: see RNNBase (``proj_size`` allowed).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    r"""Gated recurrent unit:

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad h' = (1 - z) \odot n + z \odot h

    Args: see RNNBase.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# ---- cells ------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Base of the single-step cells: ``weight_ih (chunks*H, I)``, ``weight_hh (chunks*H, H)``, biases."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw = {"device": device, "dtype": dtype if dtype is not None else nd.get_default_dtype()}
        self.weight_ih = Parameter(nd.empty(num_chunks * hidden_size, input_size, **kw))
        self.weight_hh = Parameter(nd.empty(num_chunks * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = Parameter(nd.empty(num_chunks * hidden_size, **kw))
            self.bias_hh = Parameter(nd.empty(num_chunks * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def _prepare(self, input, states):
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"[{name}] input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        B = x.shape[0]
        out = []
        for s in states:
            if s is None:
                out.append(nd.zeros(B, self.hidden_size, dtype=x.dtype, device=x.device))
                continue
            if s.dim() != input.dim():
                raise RuntimeError(f"[{name}] hidden state should be {input.dim()}-D for {input.dim()}-D input, got "
                                   f"{s.dim()}-D")
            s = s if batched else s.unsqueeze(0)
            if tuple(s.shape) != (B, self.hidden_size):
                raise RuntimeError(f"[{name}] Expected hidden size {(B, self.hidden_size)}, got {tuple(s.shape)}")
            out.append(s)
        return x, out, batched


class RNNCell(RNNCellBase):
    r""":math:`h' = \tanh(x W_{ih}^T + b_{ih} + h W_{hh}^T + b_{hh})` (or ReLU).

    Args:
        input_size, hidden_size, bias: as RNN.
        nonlinearity: ``'tanh'`` or ``'relu'``.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        # under autocast its two products run lowered, as torch's RNNCell's
        x, (h,), batched = self._prepare(input, [hx])
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        (h,) = _rnn_step(_input_projection(x, self.weight_ih, bias), (h,), self.weight_hh,
                         self.nonlinearity == "relu")
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (see LSTM for the math); returns ``(h', c')``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if _autocast_lowering(input, self.weight_ih) is not None:  # torch's fused cell is not lowered
            return _cast_state(_without_autocast(self, input, hx), input.dtype)
        h0, c0 = (None, None) if hx is None else hx
        x, (h, c), batched = self._prepare(input, [h0, c0])
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        h, c = _lstm_step(_input_projection(x, self.weight_ih, bias), (h, c), self.weight_hh, None)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (see GRU for the math)."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if _autocast_lowering(input, self.weight_ih) is not None:  # torch's fused cell is not lowered
            return _cast(_without_autocast(self, input, hx), input.dtype)
        x, (h,), batched = self._prepare(input, [hx])
        (h,) = _gru_step(_input_projection(x, self.weight_ih, self.bias_ih), (h,), self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)
