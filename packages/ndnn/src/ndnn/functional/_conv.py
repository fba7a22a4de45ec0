"""Convolutions (``conv1d/2d/3d``) and transposed convolutions over ndcore's kernels."""
from __future__ import annotations

import ndcore as nd

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

# ndcore's conv ops take ints or per-dim sequences, the 'same'/'valid' strings and unbatched input,
# and check shapes with messages naming the op, so these wrappers only carry torch's signatures.


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation :math:`y_{n,o} = b_o + \\sum_{c,k} w_{o,c,k}\\, x_{n,c,\\,s l + d k - p}`.

    Args:
        input: Tensor ``(N, C_in, L)`` or ``(C_in, L)``.
        weight: Tensor ``(C_out, C_in / groups, kL)``.
        bias: Optional tensor ``(C_out,)``.
        stride: Step of the sliding window.
        padding: Zero padding per side (int or tuple), or ``'valid'`` / ``'same'``.
        dilation: Spacing between kernel elements.
        groups: Number of blocked connections from input to output channels.
    """
    return nd.conv1d(input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over ``(N, C, H, W)`` input (see :func:`conv1d`).

    Args:
        input: Tensor ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        weight: Tensor ``(C_out, C_in / groups, kH, kW)``.
        bias: Optional tensor ``(C_out,)``.
        stride: Step of the sliding window (int or pair).
        padding: Zero padding per side (int or pair), or ``'valid'`` / ``'same'``.
        dilation: Spacing between kernel elements.
        groups: Number of blocked connections from input to output channels.
    """
    return nd.conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation over ``(N, C, D, H, W)`` input (see :func:`conv1d`).

    Args:
        input: Tensor ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.
        weight: Tensor ``(C_out, C_in / groups, kD, kH, kW)``.
        bias: Optional tensor ``(C_out,)``.
        stride: Step of the sliding window.
        padding: Zero padding per side, or ``'valid'`` / ``'same'``.
        dilation: Spacing between kernel elements.
        groups: Number of blocked connections from input to output channels.
    """
    return nd.conv3d(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution (the gradient of :func:`conv1d` with respect to its input).

    Output length: :math:`(L-1)s - 2p + d(k-1) + \\text{output\\_padding} + 1`.

    Args:
        input: Tensor ``(N, C_in, L)`` or ``(C_in, L)``.
        weight: Tensor ``(C_in, C_out / groups, kL)``.
        bias: Optional tensor ``(C_out,)``.
        stride: Stride of the (forward) convolution.
        padding: ``dilation * (k - 1) - padding`` zeros are added to both sides.
        output_padding: Extra size added to one side of the output.
        groups: Number of blocked connections.
        dilation: Spacing between kernel elements.
    """
    return nd.conv_transpose1d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution (see :func:`conv_transpose1d`).

    Args:
        input: Tensor ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        weight: Tensor ``(C_in, C_out / groups, kH, kW)``.
        bias: Optional tensor ``(C_out,)``.
        stride: Stride of the (forward) convolution.
        padding: Implicit padding of the forward convolution.
        output_padding: Extra size added to one side of each output dim.
        groups: Number of blocked connections.
        dilation: Spacing between kernel elements.
    """
    return nd.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-D transposed convolution (see :func:`conv_transpose1d`).

    Args:
        input: Tensor ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.
        weight: Tensor ``(C_in, C_out / groups, kD, kH, kW)``.
        bias: Optional tensor ``(C_out,)``.
        stride: Stride of the (forward) convolution.
        padding: Implicit padding of the forward convolution.
        output_padding: Extra size added to one side of each output dim.
        groups: Number of blocked connections.
        dilation: Spacing between kernel elements.
    """
    return nd.conv_transpose3d(input, weight, bias, stride, padding, output_padding, groups, dilation)
