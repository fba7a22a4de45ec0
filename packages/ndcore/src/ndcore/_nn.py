"""Bodies of the nn composite rows of the op table (cross_entropy_loss, ctc_loss): compositions of
the table's kernels (_log_softmax, nll_loss, _ctc_loss), so autograd sees those primitives."""
from __future__ import annotations

from ndcore import _C

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"[{op}] reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def cross_entropy_loss(input, target, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    """torch's cross_entropy_loss: log_softmax over the class dim (1, or 0 for a (C,) input), then
    nll_loss for class-index targets or a weighted sum for class-probability targets.

    Label smoothing mixes in the uniform distribution over the C classes."""
    _check_reduction("cross_entropy_loss", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"[cross_entropy_loss] label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if input.dim() == 0:
        raise ValueError("[cross_entropy_loss] expected an input of shape (C,), (N, C) or (N, C, d1, ...), got shape ()")
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    logp = _C._log_softmax(input, class_dim, False)
    if target.dtype.is_floating_point:  # class probabilities, same shape as input
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"[cross_entropy_loss] expected a probability target of the input's shape {tuple(input.shape)}, "
                             f"got {tuple(target.shape)}")
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        prod = logp * target
        if weight is not None:
            prod = prod * weight.reshape([n_classes] + [1] * (input.dim() - class_dim - 1))
        if reduction == "none":
            return -prod.sum(class_dim)
        if reduction == "sum":
            return -prod.sum()
        return -prod.sum() / (input.numel() // n_classes if n_classes else 0)  # an empty batch gives NaN, as torch
    nll = _C.nll_loss(logp, target, weight, reduction, ignore_index)
    if label_smoothing <= 0:
        return nll
    ignored = target == ignore_index
    if weight is not None:
        smooth = -(logp * weight.reshape([n_classes] + [1] * (input.dim() - class_dim - 1))).sum(class_dim)
    else:
        smooth = -logp.sum(class_dim)
    smooth = smooth.masked_fill(ignored, 0.0)
    if reduction == "mean":
        if weight is not None:
            kept = target.masked_fill(ignored, 0)
            denom = (weight.index_select(0, kept.reshape(-1)) * (~ignored).reshape(-1).to(weight.dtype)).sum()
        else:
            denom = (~ignored).sum()
        smooth = smooth.sum() / denom
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / n_classes)


def _lengths(op, name, v):
    if isinstance(v, _C.Tensor):
        if v.dtype.is_floating_point:
            raise TypeError(f"[{op}] expected integer {name}, got {v.dtype.name}")
        return [int(x) for x in v.reshape(-1).tolist()]
    if isinstance(v, int):
        return [v]
    return [int(x) for x in v]


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist Temporal Classification loss (torch's ctc_loss). Lengths may be tensors or
    int sequences; targets are padded (N, S) or concatenated (sum(target_lengths),)."""
    _check_reduction("ctc_loss", reduction)
    il = _lengths("ctc_loss", "input_lengths", input_lengths)
    tl = _lengths("ctc_loss", "target_lengths", target_lengths)
    nll = _C._ctc_loss(log_probs, targets, il, tl, blank, zero_infinity)[0]
    if zero_infinity:
        nll = nll.masked_fill(nll.isinf(), 0.0)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    import ndcore  # the creation functions live above _C

    lens = ndcore.tensor(tl, dtype=nll.dtype).clamp(min=1)
    return (nll / lens.reshape(nll.shape)).mean()


# ---- norm gradients ----------------------------------------------------------------------------------
# The grad formulas of native_{layer,batch,group}_norm call these. Plain backward runs the fused
# backward kernels; under create_graph (grad mode on inside backward) the same gradients are
# built from differentiable ops, so second derivatives (e.g. gradient penalties) work.
def _mask(index):
    return [int(i == index) for i in range(3)]


def _normalized(x, dims, eps):
    mu = x.mean(dims, keepdim=True)
    d = x - mu
    return d * ((d * d).mean(dims, keepdim=True) + eps).rsqrt()


def _norm_input_grad(g, xhat, rstd, dims):
    return rstd * (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True))


def layer_norm_backward(grad, input, normalized_shape, mean, rstd, weight, eps, index):
    """d(native_layer_norm)/d(input) for index 0, /d(weight) for index 1."""
    if not _C.is_grad_enabled():
        return _C.native_layer_norm_backward(grad, input, normalized_shape, mean, rstd, weight, None, _mask(index))[index]
    k = len(normalized_shape)
    dims = list(range(input.dim() - k, input.dim()))
    xhat = _normalized(input, dims, eps)
    if index == 1:
        return (grad * xhat).sum(list(range(input.dim() - k))) if input.dim() > k else grad * xhat
    g = grad if weight is None else grad * weight
    d = input - input.mean(dims, keepdim=True)
    return _norm_input_grad(g, xhat, ((d * d).mean(dims, keepdim=True) + eps).rsqrt(), dims)


def batch_norm_backward(grad, input, weight, running_mean, running_var, save_mean, save_invstd, training, eps, index):
    """d(native_batch_norm)/d(input) for index 0, /d(weight) for index 1."""
    if not _C.is_grad_enabled():
        return _C.native_batch_norm_backward(grad, input, weight, running_mean, running_var, save_mean, save_invstd,
                                             training, eps, _mask(index))[index]
    dims = [0] + list(range(2, input.dim()))
    shape = [1, -1] + [1] * (input.dim() - 2)
    w = None if weight is None else weight.reshape(shape)
    if training:
        d = input - input.mean(dims, keepdim=True)
        rstd = ((d * d).mean(dims, keepdim=True) + eps).rsqrt()
        xhat = d * rstd
        if index == 1:
            return (grad * xhat).sum(dims)
        return _norm_input_grad(grad if w is None else grad * w, xhat, rstd, dims)
    rstd = (running_var.reshape(shape) + eps).rsqrt()
    if index == 1:
        return (grad * (input - running_mean.reshape(shape)) * rstd).sum(dims)
    return grad * rstd if w is None else grad * rstd * w


def group_norm_backward(grad, input, mean, rstd, weight, N, C, HxW, group, eps, index):
    """d(native_group_norm)/d(input) for index 0, /d(weight) for index 1."""
    if not _C.is_grad_enabled():
        return _C.native_group_norm_backward(grad, input, mean, rstd, weight, N, C, HxW, group, _mask(index))[index]
    xs = input.reshape(N, group, -1)
    d = xs - xs.mean([2], keepdim=True)
    r = ((d * d).mean([2], keepdim=True) + eps).rsqrt()
    xhat = (d * r).reshape(N, C, -1)
    g = grad.reshape(N, C, -1)
    if index == 1:
        return (g * xhat).sum([0, 2])
    if weight is not None:
        g = g * weight.reshape(1, C, 1)
    gi = _norm_input_grad(g.reshape(N, group, -1), xhat.reshape(N, group, -1), r, [2])
    return gi.reshape(input.shape)
