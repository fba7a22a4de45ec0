"""Affine maps: ``linear`` and ``bilinear``."""
from __future__ import annotations

import ndcore as nd

__all__ = ["linear", "bilinear"]


def linear(input, weight, bias=None):
    """:math:`y = x A^T + b`.

    Args:
        input: Tensor ``(*, in_features)``.
        weight: Tensor ``(out_features, in_features)`` (or ``(in_features,)`` for a scalar output).
        bias: Optional tensor ``(out_features,)``.
    """
    if input.dim() == 2 and weight.dim() == 2:
        if input.shape[1] != weight.shape[1]:
            raise ValueError(f"[linear] input of shape {tuple(input.shape)} does not match weight of shape "
                             f"{tuple(weight.shape)}: expected input.shape[-1] == {weight.shape[1]}")
        if bias is not None:
            return nd.addmm(bias, input, weight.t())
        return input.mm(weight.t())
    if input.dim() == 0 or input.shape[-1] != weight.shape[-1]:
        raise ValueError(f"[linear] input of shape {tuple(input.shape)} does not match weight of shape "
                         f"{tuple(weight.shape)}: expected input.shape[-1] == {weight.shape[-1]}")
    if weight.dim() == 2 and input.dim() > 2:
        # (B, T, in) inputs: one 2-D GEMM (and one per grad) instead of matmul's batched path
        lead = tuple(input.shape[:-1])
        flat = input.reshape(-1, input.shape[-1])
        out = nd.addmm(bias, flat, weight.t()) if bias is not None and bias.dim() == 1 else flat.mm(weight.t())
        out = out.reshape(lead + (weight.shape[0],))
        return out if bias is None or bias.dim() == 1 else out + bias
    out = input.matmul(weight.t() if weight.dim() == 2 else weight)
    return out if bias is None else out + bias


def bilinear(input1, input2, weight, bias=None):
    """:math:`y_k = x_1^T A_k x_2 + b_k`.

    Args:
        input1: Tensor ``(*, in1_features)``.
        input2: Tensor ``(*, in2_features)`` with the same leading dims.
        weight: Tensor ``(out_features, in1_features, in2_features)``.
        bias: Optional tensor ``(out_features,)``.
    """
    if weight.dim() != 3:
        raise ValueError(f"[bilinear] expected a 3-D weight (out, in1, in2), got shape {tuple(weight.shape)}")
    out_f, in1, in2 = weight.shape
    if input1.shape[-1] != in1 or input2.shape[-1] != in2 or tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise ValueError(f"[bilinear] inputs of shapes {tuple(input1.shape)} and {tuple(input2.shape)} do not match "
                         f"weight of shape {tuple(weight.shape)}: expected (*, {in1}) and (*, {in2})")
    lead = tuple(input1.shape[:-1])
    # x1 @ [A_1 | ... | A_k] gives every x1^T A_k at once; then a dot with x2 per output.
    t = input1.reshape(-1, in1).mm(weight.permute(1, 0, 2).reshape(in1, out_f * in2))
    out = (t.reshape(-1, out_f, in2) * input2.reshape(-1, 1, in2)).sum(-1)
    if bias is not None:
        out = out + bias
    return out.reshape(lead + (out_f,))
