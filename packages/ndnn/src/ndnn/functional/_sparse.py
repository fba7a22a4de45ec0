"""Embedding lookups: ``embedding`` and ``embedding_bag``."""
from __future__ import annotations

import ndcore as nd
import ndgrad

__all__ = ["embedding", "embedding_bag"]


def _padding_idx(op, padding_idx, num):
    if padding_idx is None:
        return None
    if not -num <= padding_idx < num:
        raise ValueError(f"[{op}] padding_idx must be within the number of embeddings ({num}), got {padding_idx}")
    return padding_idx + num if padding_idx < 0 else padding_idx


def _check_index(op, input, num):
    if input.is_floating_point() or input.dtype == nd.bool:
        raise TypeError(f"[{op}] expected an integer index tensor (int32 or int64), got dtype {input.dtype}")
    # index_select rejects indices >= num itself but wraps negative ones, which torch refuses
    if input.numel() and int(input.min()) < 0:
        _range_error(op, input, num)


def _range_error(op, input, num):
    raise IndexError(f"[{op}] index out of range: indices must be in [0, {num}), got values in "
                     f"[{int(input.min())}, {int(input.max())}]")


def _lookup(op, weight, flat, num):
    try:
        return weight.index_select(0, flat)
    except IndexError:
        _range_error(op, flat, num)


def _renorm_(weight, input, max_norm, norm_type):
    """Rescales, in place, the rows of ``weight`` that ``input`` uses so their ``norm_type``-norm is at most
    ``max_norm`` (torch's ``embedding_renorm_``)."""
    with ndgrad.no_grad():
        idx = nd.unique(input.reshape(-1))
        rows = weight.index_select(0, idx)
        norms = rows.norm(norm_type, 1, keepdim=True)
        scale = nd.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight.index_copy_(0, idx, rows * scale)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Looks up rows of ``weight``: ``out[..., :] = weight[input[...], :]``.

    Args:
        input: Integer tensor of indices, any shape.
        weight: Tensor ``(num_embeddings, embedding_dim)``.
        padding_idx: Row whose gradient is always zero.
        max_norm: If given, rows looked up are renormalised in place to this maximum norm first.
        norm_type: p of the norm for ``max_norm``.
        scale_grad_by_freq: Divide each row's gradient by its count in ``input``.
        sparse: Sparse gradients (not supported: ndcore has no sparse tensors).
    """
    if weight.dim() != 2:
        raise ValueError(f"[embedding] weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"{tuple(weight.shape)}")
    if sparse:
        raise NotImplementedError("[embedding] sparse=True is not supported (ndcore has no sparse tensors); "
                                  "use sparse=False")
    num = weight.shape[0]
    padding_idx = _padding_idx("embedding", padding_idx, num)
    _check_index("embedding", input, num)
    if max_norm is not None:
        _renorm_(weight, input, max_norm, norm_type)
    flat = input.reshape(-1)
    out = _lookup("embedding", weight, flat, num)
    if out.requires_grad and (padding_idx is not None or scale_grad_by_freq):
        scale = None
        if scale_grad_by_freq:
            counts = nd.bincount(flat, minlength=num).to(weight.dtype)
            scale = (1.0 / counts.index_select(0, flat)).unsqueeze(1)
        if padding_idx is not None:
            keep = (flat != padding_idx).to(weight.dtype).unsqueeze(1)
            scale = keep if scale is None else scale * keep
        # The forward value is untouched; only the gradient reaching weight is rescaled.
        out.register_hook(lambda g: g * scale)
    return out.reshape(tuple(input.shape) + (weight.shape[1],))


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, averages or takes the max of bags of embeddings without materialising each lookup's bag.

    Args:
        input: ``(B, N)`` indices (B bags of N), or 1-D indices split into bags by ``offsets``.
        weight: Tensor ``(num_embeddings, embedding_dim)``.
        offsets: 1-D start positions of the bags in a 1-D ``input``.
        max_norm: Renormalise looked-up rows to this maximum norm (in place).
        norm_type: p of the norm for ``max_norm``.
        scale_grad_by_freq: Divide each row's gradient by its count in ``input``.
        mode: ``'sum'``, ``'mean'`` or ``'max'``.
        sparse: Not supported.
        per_sample_weights: Weights with ``input``'s shape (``mode='sum'`` only).
        include_last_offset: ``offsets`` has one extra final element (the end of the last bag).
        padding_idx: Entries equal to it are left out of their bag.

    Returns:
        Tensor ``(B, embedding_dim)``; empty bags give zeros.
    """
    if weight.dim() != 2:
        raise ValueError(f"[embedding_bag] weight has to be a 2D Tensor, but got Tensor of dimension {weight.dim()}")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"[embedding_bag] mode has to be one of sum, mean or max, got {mode!r}")
    if sparse:
        raise NotImplementedError("[embedding_bag] sparse=True is not supported; use sparse=False")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(f"[embedding_bag] per_sample_weights was not None. per_sample_weights is only "
                                      f"supported for mode='sum' (got mode='{mode}'). Please open a feature request "
                                      "on GitHub.")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ValueError(f"[embedding_bag] embedding_bag: If per_sample_weights ({tuple(per_sample_weights.shape)}"
                             f") is not None, then it must have the same shape as the input "
                             f"({tuple(input.shape)})")
    num, dim = weight.shape
    padding_idx = _padding_idx("embedding_bag", padding_idx, num)
    _check_index("embedding_bag", input, num)
    if input.dim() == 2:
        if offsets is not None:
            raise ValueError("[embedding_bag] if input is 2D, then offsets has to be None, as input is treated is a "
                             "mini-batch of fixed length sequences.")
        nbags, per_bag = input.shape
        flat = input.reshape(-1)
        bag = nd.arange(nbags, device=input.device).repeat_interleave(per_bag)
    elif input.dim() == 1:
        if offsets is None:
            raise ValueError("[embedding_bag] offsets has to be a 1D Tensor but got None")
        if offsets.dim() != 1:
            raise ValueError(f"[embedding_bag] offsets has to be a 1D Tensor, got shape {tuple(offsets.shape)}")
        starts = offsets.long()
        if include_last_offset:
            starts = starts[:-1]
        nbags = starts.shape[0]
        flat = input
        if nbags == 0:
            return weight.new_zeros((0, dim))
        bag = nd.searchsorted(starts, nd.arange(flat.shape[0], device=input.device), right=True) - 1
        if include_last_offset:
            end = int(offsets[-1])
            keep_len = bag.shape[0] if end >= flat.shape[0] else end
            flat, bag = flat[:keep_len], bag[:keep_len]
    else:
        raise ValueError(f"[embedding_bag] input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{input.dim()}")
    psw = None if per_sample_weights is None else per_sample_weights.reshape(-1)[:flat.shape[0]]
    if padding_idx is not None:
        sel = (flat != padding_idx).nonzero().reshape(-1)
        flat, bag = flat.index_select(0, sel), bag.index_select(0, sel)
        psw = None if psw is None else psw.index_select(0, sel)
    emb = embedding(flat, weight, None, max_norm, norm_type, scale_grad_by_freq)
    if mode == "max":
        counts = nd.bincount(bag, minlength=nbags)
        width = max(int(counts.max()) if counts.numel() else 0, 1)
        # Pack each bag into a row of a (nbags, width) grid padded with -inf, then reduce the rows.
        rank = nd.arange(bag.shape[0], device=bag.device) - (counts.cumsum(0) - counts).index_select(0, bag)
        grid = weight.new_full((nbags * width, dim), float("-inf"))
        grid = grid.index_copy(0, bag * width + rank, emb).reshape(nbags, width, dim).amax(1)
        return nd.where((counts > 0).unsqueeze(1), grid, 0.0)
    if psw is not None:
        emb = emb * psw.unsqueeze(1)
    out = weight.new_zeros((nbags, dim)).index_add(0, bag, emb)
    if mode == "mean":
        counts = nd.bincount(bag, minlength=nbags).clamp(min=1).to(weight.dtype)
        out = out / counts.unsqueeze(1)
    return out
