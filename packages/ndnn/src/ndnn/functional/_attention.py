"""Attention: ``scaled_dot_product_attention`` and ``multi_head_attention_forward`` (torch's semantics)."""
from __future__ import annotations

import math

import ndcore as nd
import ndgrad

from ..amp import _lowering_dtype, autocast
from . import _dropout

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

_NEG_INF = float("-inf")
_causal_cache: dict = {}


def _causal_keep(L, S, device):
    """Bool (L, S) mask, True where query i may attend key j (j <= i); cached per shape and device."""
    key = (L, S, str(device))
    m = _causal_cache.get(key)
    if m is None:
        m = nd.ones(L, S, dtype=nd.bool, device=device).tril()
        if len(_causal_cache) > 64:
            _causal_cache.clear()
        _causal_cache[key] = m
    return m


class _SplitLast(ndgrad.Function):
    """``x.split(sizes, -1)`` whose backward is one cat of the pieces' gradients; through the
    slice views each piece's gradient would be a zero-filled full-size tensor, then summed.
    When the gradients already are the column blocks of one buffer (the fused attention backward
    writes q/k/v gradients so), that buffer is the gradient and nothing is copied."""

    @staticmethod
    def forward(ctx, x, sizes):
        ctx.shape, ctx.sizes = tuple(x.shape), list(sizes)
        return tuple(x.split(sizes, -1))

    @staticmethod
    def backward(ctx, *grads):
        whole = _packed_whole(grads, ctx.shape, ctx.sizes)
        return (nd.cat(list(grads), -1) if whole is None else whole), None


def _packed_whole(grads, shape, sizes):
    """The tensor of ``shape`` whose ``split(sizes, -1)`` pieces are exactly ``grads`` (same memory,
    shapes and strides) when they fill one contiguous buffer from its start; None otherwise."""
    g0 = grads[0]
    if g0 is None or g0.requires_grad or g0.storage_offset() != 0 or \
            g0._storage_nbytes() != math.prod(shape) * g0.element_size():
        return None
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    whole = g0.as_strided(shape, tuple(reversed(strides)), 0)
    for g, piece in zip(grads, whole.split(sizes, -1)):
        if g is None or g.requires_grad or g.dtype != g0.dtype or g.data_ptr() != piece.data_ptr() or \
                g.shape != piece.shape or g.stride() != piece.stride():
            return None
    return whole


def _split_last(x, sizes):
    """The views ``x.split(sizes, -1)``; their gradients reach ``x`` as one concatenation."""
    if not (x.requires_grad and ndgrad.is_grad_enabled()):
        return tuple(x.split(sizes, -1))
    return _SplitLast.apply(x, list(sizes))


def _fused_mask(query, key, value, attn_mask, dropout_p):
    """The additive mask for ``_fused_attention`` (None for no mask), or False where the
    composite path must run: dropout, 16-bit or non-CPU tensors, broadcast batch dims, empty
    dims, or a mask that needs a gradient."""
    if dropout_p > 0.0 or query.dtype not in (nd.float32, nd.float64) or query.device.type != "cpu":
        return False
    if key.device.type != "cpu" or value.device.type != "cpu":
        return False
    if not (query.shape[:-2] == key.shape[:-2] == value.shape[:-2]):
        return False
    if 0 in query.shape or 0 in key.shape or 0 in value.shape:
        return False
    if attn_mask is None:
        return None
    if attn_mask.requires_grad or attn_mask.device.type != "cpu" or attn_mask.dim() > query.dim():
        return False
    if any(m not in (1, b) for m, b in zip(reversed(attn_mask.shape[:-2]), reversed(query.shape[:-2]))):
        return False  # the mask would broadcast the output to more batch entries than the query has
    if attn_mask.dtype == nd.bool:
        # True keeps a key; the kernel gives rows with no kept key zeros, as the composite path does
        return nd.zeros(*attn_mask.shape, dtype=query.dtype).masked_fill(attn_mask.logical_not(), _NEG_INF)
    if not attn_mask.dtype.is_floating_point:
        return False  # the composite path raises the error
    return attn_mask.to(query.dtype)


def _linear(x, w, b):
    if x.dim() == 2 and b is not None:
        return nd.addmm(b, x, w.t())
    y = x.matmul(w.t())
    return y if b is None else y + b


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    r"""Attention of ``query`` over ``key``/``value``:

    .. math:: \mathrm{softmax}\left(\frac{QK^T}{\sqrt{E}} + \text{mask}\right) V

    Args:
        query: ``(..., L, E)``.
        key: ``(..., S, E)``.
        value: ``(..., S, Ev)``.
        attn_mask: Broadcastable to ``(..., L, S)``. Bool: True marks the keys a query may attend.
            Float: added to the scores (``-inf`` excludes a key).
        dropout_p: Dropout probability on the attention weights (applied whenever > 0).
        is_causal: Query i attends only keys j <= i (``attn_mask`` must then be None).
        scale: Score scale; ``1 / sqrt(E)`` by default.
        enable_gqa: Grouped-query attention: key/value heads (dim -3) are repeated to match query's.

    Returns:
        ``(..., L, Ev)``. Queries whose every key is masked get zeros, as torch's CPU kernels give.

    float32/float64 CPU inputs without dropout run one fused kernel (``_fused_attention``: no
    score tensor or causal mask is materialised, Note [Fused attention] in attention.cpp); the
    rest (dropout, 16-bit floats, broadcast batch dims, empty inputs, a mask that needs a
    gradient) run the composite softmax(QK^T)V below.
    """
    lower = _lowering_dtype(query.device.type)
    if lower is not None and nd.float32 in (query.dtype, key.dtype, value.dtype) and \
            all(t.dtype.is_floating_point and t.dtype != nd.float64 for t in (query, key, value)):
        # torch lowers attention under CPU autocast; the fused kernel computes in float32 instead
        # and the result is rounded to the autocast dtype, the dtype torch's has
        if attn_mask is not None and attn_mask.dtype.is_floating_point:
            attn_mask = attn_mask.float()
        with autocast(query.device.type, enabled=False):
            out = scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask, dropout_p,
                                               is_causal, scale, enable_gqa)
        return out.to(lower)
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() < 2:
            raise ValueError(f"[scaled_dot_product_attention] expected {name} with at least 2 dims, got shape "
                             f"{tuple(t.shape)}")
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"[scaled_dot_product_attention] expected query, key and value to have the same dtype, got "
                        f"{query.dtype}, {key.dtype} and {value.dtype}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"[scaled_dot_product_attention] incompatible shapes: query {tuple(query.shape)}, key "
                         f"{tuple(key.shape)}, value {tuple(value.shape)} (need query/key to share E and key/value "
                         f"to share S)")
    if enable_gqa and query.dim() >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk or hq % value.shape[-3]:
            raise ValueError(f"[scaled_dot_product_attention] enable_gqa needs query heads ({hq}) to be a multiple "
                             f"of key/value heads ({hk}, {value.shape[-3]})")
        key = key.repeat_interleave(hq // hk, -3)
        value = value.repeat_interleave(hq // value.shape[-3], -3)
    L, S = query.shape[-2], key.shape[-2]
    scale_factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if is_causal and attn_mask is not None:
        raise RuntimeError("[scaled_dot_product_attention] Explicit attn_mask should not be set when is_causal=True")
    fused_mask = _fused_mask(query, key, value, attn_mask, dropout_p)
    if fused_mask is not False:
        return nd._fused_attention(query, key, value, fused_mask, is_causal, float(scale_factor))[0]
    scores = (query * scale_factor).matmul(key.transpose(-2, -1))
    dead = None
    if is_causal or (attn_mask is not None and attn_mask.dtype == nd.bool):
        keep = _causal_keep(L, S, query.device) if is_causal else attn_mask
        # a query with no key left would give 0/0: it attends nothing and outputs zeros instead
        dead = keep.logical_not().all(-1, keepdim=True)
        if bool(dead.any()):
            keep = keep.logical_or(dead)
        else:
            dead = None
        scores = scores.masked_fill(keep.logical_not(), _NEG_INF)
    elif attn_mask is not None:
        if not attn_mask.dtype.is_floating_point:
            raise TypeError(f"[scaled_dot_product_attention] attn_mask must be bool or floating, got {attn_mask.dtype}")
        dead = (attn_mask == _NEG_INF).all(-1, keepdim=True)
        if bool(dead.any()):
            attn_mask = attn_mask.masked_fill(dead, 0.0)
        else:
            dead = None
        scores = scores + attn_mask
    attn = scores.softmax(-1)
    if dropout_p > 0.0:
        attn = _dropout.dropout(attn, dropout_p, True)
    out = attn.matmul(value)
    if dead is not None:
        out = out.masked_fill(dead, 0.0)
    return out


def _canonical_mask(mask, name, target_dtype):
    """Bool masks become float masks with -inf where True (torch's convention for MHA masks)."""
    if mask is None:
        return None
    if mask.dtype == nd.bool:
        return nd.zeros(*mask.shape, dtype=target_dtype, device=mask.device).masked_fill(mask, _NEG_INF)
    if not mask.dtype.is_floating_point:
        raise TypeError(f"[multi_head_attention_forward] only bool and floating types of {name} are supported, got "
                        f"{mask.dtype}")
    return mask


def _mha_check(query, key, value, key_padding_mask, attn_mask, num_heads):
    if query.dim() == 3:
        if key.dim() != 3 or value.dim() != 3:
            raise ValueError(f"[multi_head_attention] for batched (3-D) query, expected key and value to be 3-D, got "
                             f"{key.dim()}-D and {value.dim()}-D")
        if key_padding_mask is not None and key_padding_mask.dim() != 2:
            raise ValueError(f"[multi_head_attention] for batched (3-D) query, expected key_padding_mask to be 2-D, "
                             f"got {key_padding_mask.dim()}-D")
        if attn_mask is not None and attn_mask.dim() not in (2, 3):
            raise ValueError(f"[multi_head_attention] for batched (3-D) query, expected attn_mask to be 2-D or 3-D, "
                             f"got {attn_mask.dim()}-D")
        return True
    if query.dim() == 2:
        if key.dim() != 2 or value.dim() != 2:
            raise ValueError(f"[multi_head_attention] for unbatched (2-D) query, expected key and value to be 2-D, "
                             f"got {key.dim()}-D and {value.dim()}-D")
        if key_padding_mask is not None and key_padding_mask.dim() != 1:
            raise ValueError(f"[multi_head_attention] for unbatched (2-D) query, expected key_padding_mask to be "
                             f"1-D, got {key_padding_mask.dim()}-D")
        if attn_mask is not None:
            if attn_mask.dim() not in (2, 3):
                raise ValueError(f"[multi_head_attention] for unbatched (2-D) query, expected attn_mask to be 2-D "
                                 f"or 3-D, got {attn_mask.dim()}-D")
            if attn_mask.dim() == 3 and attn_mask.shape != (num_heads, query.shape[0], key.shape[0]):
                raise ValueError(f"[multi_head_attention] expected 3-D attn_mask of shape "
                                 f"{(num_heads, query.shape[0], key.shape[0])}, got {tuple(attn_mask.shape)}")
        return False
    raise ValueError(f"[multi_head_attention] query should be unbatched 2-D or batched 3-D, got {query.dim()}-D")


def _in_projection_packed(q, k, v, w, b):
    E = q.shape[-1]
    if k is v:
        if q is k:
            proj = _linear(q, w, b)
            return _split_last(proj, [E, E, E])
        w_q, w_kv = w.split([E, 2 * E])
        b_q, b_kv = (None, None) if b is None else b.split([E, 2 * E])
        return (_linear(q, w_q, b_q), *_split_last(_linear(k, w_kv, b_kv), [E, E]))
    w_q, w_k, w_v = w.chunk(3)
    b_q, b_k, b_v = (None, None, None) if b is None else b.chunk(3)
    return _linear(q, w_q, b_q), _linear(k, w_k, b_k), _linear(v, w_v, b_v)


def _pad_last(x, value=0.0):
    return nd.cat([x, nd.full(list(x.shape[:-1]) + [1], value, dtype=x.dtype, device=x.device)], -1)


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """Multi-head attention on sequence-first inputs ``(L, N, E)`` (or unbatched ``(L, E)``).

    Args follow ``torch.nn.functional.multi_head_attention_forward``; masks may be bool (True =
    masked out) or float (added). Returns ``(attn_output, attn_weights or None)``.
    """
    is_batched = _mha_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        same_kv, same_qk = key is value, query is key
        query = query.unsqueeze(1)
        key = query if same_qk else key.unsqueeze(1)
        value = key if same_kv else value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise ValueError(f"[multi_head_attention] was expecting embedding dimension of {embed_dim_to_check}, but got "
                         f"{embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise ValueError(f"[multi_head_attention] embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"[multi_head_attention] key's sequence and batch dims {tuple(key.shape[:2])} do not "
                             f"match value's {tuple(value.shape[:2])}")
    elif tuple(key.shape) != tuple(value.shape):
        raise ValueError(f"[multi_head_attention] key shape {tuple(key.shape)} does not match value shape "
                         f"{tuple(value.shape)}")
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the SDPA call below applies the causal mask itself
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", query.dtype)
        if key_padding_mask is not None:
            is_causal = False
    if not use_separate_proj_weight:
        q, k, v = _in_projection_packed(query, key, value, in_proj_weight, in_proj_bias)
    else:
        b_q, b_k, b_v = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
        q = _linear(query, q_proj_weight, b_q)
        k = _linear(key, k_proj_weight, b_k)
        v = _linear(value, v_proj_weight, b_v)
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
            raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                               f"{(bsz * num_heads, tgt_len, src_len)}.")
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise ValueError("[multi_head_attention] bias cannot be added to static key/value")
        k = nd.cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = nd.cat([v, bias_v.expand(1, bsz, embed_dim)])
        if attn_mask is not None:
            attn_mask = _pad_last(attn_mask)
        if key_padding_mask is not None:
            key_padding_mask = _pad_last(key_padding_mask)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_k is None else static_k
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_v is None else static_v
    if add_zero_attn:
        zeros = nd.zeros(bsz * num_heads, 1, head_dim, dtype=k.dtype, device=k.device)
        k = nd.cat([k, zeros], 1)
        v = nd.cat([v, zeros], 1)
        if attn_mask is not None:
            attn_mask = _pad_last(attn_mask)
        if key_padding_mask is not None:
            key_padding_mask = _pad_last(key_padding_mask)
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise ValueError(f"[multi_head_attention] expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                             f"{tuple(key_padding_mask.shape)}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    if need_weights:
        q_scaled = q * math.sqrt(1.0 / head_dim)
        weights = q_scaled.bmm(k.transpose(-2, -1))
        if attn_mask is not None:
            weights = weights + attn_mask
        weights = weights.softmax(-1)
        if dropout_p > 0.0:
            weights = _dropout.dropout(weights, dropout_p, True)
        out = weights.bmm(v)
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = _linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if not is_batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights
    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = _linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    if not is_batched:
        out = out.squeeze(1)
    return out, None
