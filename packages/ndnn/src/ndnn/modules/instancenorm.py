"""Instance normalisation layers (``InstanceNorm1d/2d/3d``): per-sample, per-channel statistics."""
from __future__ import annotations

import warnings

from .. import functional as F
from .batchnorm import _NormBase

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]


class _InstanceNorm(_NormBase):
    _no_batch_dim = 0

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def _apply_instance_norm(self, input):
        return F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                               self.training or not self.track_running_stats,
                               self.momentum if self.momentum is not None else 0.0, self.eps)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        version = local_metadata.get("version", None)
        if version is None and not self.track_running_stats:
            keys = [prefix + n for n in ("running_mean", "running_var") if prefix + n in state_dict]
            if keys:
                error_msgs.append(f"Unexpected running stats buffer(s) {' and '.join(repr(k) for k in keys)} for "
                                  f"{type(self).__name__} with track_running_stats=False. Remove these keys from "
                                  "state_dict, or set track_running_stats=True.")
                for k in keys:
                    state_dict.pop(k)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, input):
        nb = self._no_batch_dim
        if input.dim() not in (nb, nb + 1):
            raise ValueError(f"[{type(self).__name__}] expected {nb}D (unbatched) or {nb + 1}D (batched) input "
                             f"(got {input.dim()}D input of shape {tuple(input.shape)})")
        feature_dim = input.dim() - nb
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"[{type(self).__name__}] expected input's size at dim={feature_dim} to match "
                                 f"num_features ({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        if input.dim() == nb:
            return self._apply_instance_norm(input.unsqueeze(0)).squeeze(0)
        return self._apply_instance_norm(input)


class InstanceNorm1d(_InstanceNorm):
    """Instance norm over ``(N, C, L)`` or ``(C, L)`` input: each channel of each sample is normalised
    over its length, :math:`y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta`.

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance.
        momentum: Running-average factor (with ``track_running_stats``).
        affine: Learn per-channel :math:`\\gamma`, :math:`\\beta` (default False).
        track_running_stats: Keep running statistics for eval (default False).
        device: Device of parameters and buffers.
        dtype: Dtype of parameters and buffers.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance norm over ``(N, C, H, W)`` or ``(C, H, W)`` input (see :class:`InstanceNorm1d`).

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance.
        momentum: Running-average factor.
        affine: Learn per-channel :math:`\\gamma`, :math:`\\beta`.
        track_running_stats: Keep running statistics for eval.
        device: Device of parameters and buffers.
        dtype: Dtype of parameters and buffers.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    _no_batch_dim = 3


class InstanceNorm3d(_InstanceNorm):
    """Instance norm over ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input (see :class:`InstanceNorm1d`).

    Args:
        num_features: Channels ``C``.
        eps: Added to the variance.
        momentum: Running-average factor.
        affine: Learn per-channel :math:`\\gamma`, :math:`\\beta`.
        track_running_stats: Keep running statistics for eval.
        device: Device of parameters and buffers.
        dtype: Dtype of parameters and buffers.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    _no_batch_dim = 4
