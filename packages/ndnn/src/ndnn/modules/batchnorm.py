"""Batch normalisation layers with running statistics (``BatchNorm1d/2d/3d``)."""
from __future__ import annotations

import ndcore as nd

from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _NormBase(Module):
    """Parameters and running-statistics buffers shared by batch and instance norm."""

    _version = 2
    __constants__ = ["track_running_stats", "momentum", "eps", "num_features", "affine"]

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if self.affine:
            self.weight = Parameter(nd.empty(num_features, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(nd.empty(num_features, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", nd.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", nd.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", nd.tensor(0, dtype=nd.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input):
        raise NotImplementedError

    def extra_repr(self):
        return ("{num_features}, eps={eps}, momentum={momentum}, affine={affine}, bias={use_bias}, "
                "track_running_stats={track_running_stats}".format(**self.__dict__, use_bias=self.bias is not None))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        version = local_metadata.get("version", None)
        if (version is None or version < 2) and self.track_running_stats:
            # Checkpoints from before num_batches_tracked existed.
            key = prefix + "num_batches_tracked"
            if key not in state_dict:
                state_dict[key] = (self.num_batches_tracked if self.num_batches_tracked is not None
                                   else nd.tensor(0, dtype=nd.int64))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class _BatchNorm(_NormBase):
    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"[{type(self).__name__}] expected input with {self.num_features} channels (dim 1), got "
                             f"input of shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            # momentum=None: cumulative moving average over all batches seen.
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_buffers = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if use_buffers else None,
                            self.running_var if use_buffers else None, self.weight, self.bias, bn_training, factor,
                            self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` input, per channel:
    :math:`y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta`.

    Training uses the batch statistics and updates ``running_mean``/``running_var``
    (:math:`\\hat r = (1 - m) \\hat r + m\\, r_t`, unbiased variance; ``momentum=None`` is a cumulative
    average); evaluation uses the running statistics.

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance.
        momentum: Running-average factor, or None for a cumulative average.
        affine: Learn :math:`\\gamma` and :math:`\\beta`.
        track_running_stats: Keep running statistics (else batch statistics in eval too).
        device: Device of parameters and buffers.
        dtype: Dtype of parameters and buffers.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    def _check_input_dim(self, input):
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(f"[BatchNorm1d] expected 2D or 3D input (got {input.dim()}D input of shape "
                             f"{tuple(input.shape)})")


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` input, per channel (see :class:`BatchNorm1d`).

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance.
        momentum: Running-average factor, or None for a cumulative average.
        affine: Learn :math:`\\gamma` and :math:`\\beta`.
        track_running_stats: Keep running statistics.
        device: Device of parameters and buffers.
        dtype: Dtype of parameters and buffers.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    def _check_input_dim(self, input):
        if input.dim() != 4:
            raise ValueError(f"[BatchNorm2d] expected 4D input (got {input.dim()}D input of shape "
                             f"{tuple(input.shape)})")


class BatchNorm3d(_BatchNorm):
    """Batch norm over ``(N, C, D, H, W)`` input, per channel (see :class:`BatchNorm1d`).

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance.
        momentum: Running-average factor, or None for a cumulative average.
        affine: Learn :math:`\\gamma` and :math:`\\beta`.
        track_running_stats: Keep running statistics.
        device: Device of parameters and buffers.
        dtype: Dtype of parameters and buffers.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    def _check_input_dim(self, input):
        if input.dim() != 5:
            raise ValueError(f"[BatchNorm3d] expected 5D input (got {input.dim()}D input of shape "
                             f"{tuple(input.shape)})")
