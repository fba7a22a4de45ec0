"""Vision helpers: padding, interpolation, grid sampling, pixel (un)shuffle, unfold/fold."""
from __future__ import annotations

import math
import warnings

import ndcore as nd

from ._pooling import adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d
from ._utils import _pair

__all__ = [
    "pad", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "grid_sample", "affine_grid",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "unfold", "fold",
]


# ---------------------------------------------------------------- padding

def _pad_circular(input, pad):
    out = input
    for i in range(len(pad) // 2):
        dim = input.dim() - 1 - i
        left, right = pad[2 * i], pad[2 * i + 1]
        size = out.shape[dim]
        # negative pads crop first; the positive ones then wrap around what is left
        core = out.narrow(dim, max(-left, 0), size - max(-left, 0) - max(-right, 0))
        size = core.shape[dim]
        if left > size or right > size:
            raise ValueError(f"[pad] Padding value causes wrapping around more than once: padding ({left}, {right}) "
                             f"for dimension {dim} of size {size}")
        parts = [core]
        if left > 0:
            parts.insert(0, core.narrow(dim, size - left, left))
        if right > 0:
            parts.append(core.narrow(dim, 0, right))
        out = nd.cat(parts, dim) if len(parts) > 1 else core
    return out


def pad(input, pad, mode="constant", value=None):
    """Pads the last ``len(pad) // 2`` dims; ``pad`` lists (left, right) pairs starting from the last dim.

    Args:
        input: Tensor.
        pad: Even-length sequence ``(last_left, last_right, prev_left, prev_right, ...)``; negative values crop.
        mode: ``'constant'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        value: Fill value for ``'constant'`` (default 0).
    """
    pad = list(pad)
    if len(pad) % 2:
        raise ValueError(f"[pad] Padding length must be divisible by 2, got {len(pad)}")
    if len(pad) // 2 > input.dim():
        raise ValueError(f"[pad] Padding length should be less than or equal to two times the input dimension but "
                         f"got padding length {len(pad)} and input of dimension {input.dim()}")
    if mode == "constant":
        return nd.constant_pad_nd(input, pad, 0.0 if value is None else value)
    if value is not None and value != 0:
        raise ValueError(f"[pad] Padding mode \"{mode}\" doesn't take in value argument.")
    n = len(pad) // 2
    if mode == "circular":
        if input.dim() not in (n + 1, n + 2):
            raise ValueError(f"[pad] circular padding of {n} dims expects a {n + 1}-D or {n + 2}-D input, got "
                             f"shape {tuple(input.shape)}")
        return _pad_circular(input, pad)
    if mode not in ("reflect", "replicate"):
        raise NotImplementedError(f"[pad] Unrecognised padding mode {mode!r} (expected 'constant', 'reflect', "
                                  "'replicate' or 'circular')")
    if n not in (1, 2, 3) or input.dim() not in (n + 1, n + 2):
        raise NotImplementedError(f"[pad] Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for "
                                  f"now; got {mode} padding of {n} dims for input of shape {tuple(input.shape)}")
    if mode == "reflect":
        fn = (nd.reflection_pad1d, nd.reflection_pad2d, nd.reflection_pad3d)[n - 1]
    else:
        fn = (nd.replication_pad1d, nd.replication_pad2d, nd.replication_pad3d)[n - 1]
    return fn(input, pad)


# ---------------------------------------------------------------- interpolation

_MODE_RANK = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}


def _aa_weights(in_size, out_size, scale, bicubic, like):
    """``(out, in)`` matrix of torch's antialiased resampling along one dim: each output row averages the
    inputs under a triangle (bilinear) or Keys cubic (a = -0.5) filter stretched by ``scale`` when
    downsampling, normalised to sum 1."""
    support = (2.0 if bicubic else 1.0) * (scale if scale >= 1.0 else 1.0)
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    i = nd.arange(out_size, dtype=nd.float64, device=like.device).unsqueeze(1)
    j = nd.arange(in_size, dtype=nd.float64, device=like.device).unsqueeze(0)
    center = (i + 0.5) * scale
    lo = (center - support + 0.5).trunc().clamp(min=0.0)
    hi = (center + support + 0.5).trunc().clamp(max=float(in_size))
    x = ((j - center + 0.5) * inv).abs()
    if bicubic:
        a = -0.5
        w = nd.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
                     nd.where(x < 2.0, ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a, 0.0))
    else:
        w = (1.0 - x).clamp(min=0.0)
    w = w * ((j >= lo).logical_and(j < hi)).to(nd.float64)
    total = w.sum(1, keepdim=True)
    return (w / nd.where(total != 0, total, 1.0)).to(like.dtype)


def _interpolate_aa(input, output_size, scales, align_corners, bicubic):
    # Separable: one (out, in) weight matrix per spatial dim, applied along H then W.
    out = input
    for d, (o, s) in enumerate(zip(output_size, scales)):
        n = input.shape[2 + d]
        if align_corners:
            scale = (n - 1) / (o - 1) if o > 1 else 0.0
        else:
            scale = 1.0 / s if s is not None and s > 0 else n / o
        w = _aa_weights(n, o, scale, bicubic, input)
        out = out.transpose(2 + d, -1).matmul(w.t()).transpose(-1, 2 + d)
    return out


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resizes ``(N, C, *spatial)`` input to ``size`` or by ``scale_factor``.

    Args:
        input: Tensor ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        size: Output spatial size (int or sequence).
        scale_factor: Multiplier of the spatial size (float or sequence).
        mode: ``'nearest'``, ``'nearest-exact'``, ``'linear'``, ``'bilinear'``, ``'bicubic'``, ``'trilinear'``
            or ``'area'``.
        align_corners: For the linear modes: align the corner pixels' centres (default False).
        recompute_scale_factor: Derive the scale from the computed output size instead of using ``scale_factor``.
        antialias: For ``'bilinear'``/``'bicubic'`` downsampling: widen the filter to average all covered
            inputs (torch's/PIL's antialiased resize).
    """
    dim = input.dim() - 2
    if dim < 1:
        raise ValueError(f"[interpolate] expected input of shape (N, C, *spatial), got {tuple(input.shape)}")
    if size is not None and scale_factor is not None:
        raise ValueError("[interpolate] only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(f"[interpolate] Input and output must have the same number of spatial dimensions, "
                                 f"but got input with spatial dimensions of {list(input.shape[2:])} and output size "
                                 f"of {list(size)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                                 "output size in (o1, o2, ...,oK) format.")
            output_size = [int(s) for s in size]
        else:
            output_size = [int(size)] * dim
        scales = [None] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(f"[interpolate] Input and scale_factor must have the same number of spatial "
                                 f"dimensions, but got input with spatial dimensions of {list(input.shape[2:])} and "
                                 f"scale_factor of shape {list(scale_factor)}.")
            scales = [float(s) for s in scale_factor]
        else:
            scales = [float(scale_factor)] * dim
        output_size = [math.floor(input.shape[2 + i] * scales[i]) for i in range(dim)]
        if recompute_scale_factor or mode == "area":
            scales = [None] * dim
    else:
        raise ValueError("[interpolate] either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("[interpolate] recompute_scale_factor is not meaningful with an explicit size.")
    if antialias and not (mode in ("bilinear", "bicubic") and input.dim() == 4):
        raise ValueError("[interpolate] Anti-alias option is restricted to bilinear and bicubic modes and requires a "
                         "4-D tensor as input")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("[interpolate] align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif mode in _MODE_RANK:
        if input.dim() != _MODE_RANK[mode]:
            raise NotImplementedError(f"[interpolate] Got {input.dim()}D input, but {mode} mode needs "
                                      f"{_MODE_RANK[mode]}D input")
        align_corners = bool(align_corners)
    else:
        raise NotImplementedError(f"[interpolate] Input Error: Only 3D, 4D and 5D input Tensors supported (got "
                                  f"{input.dim()}D) for the modes: nearest | linear | bilinear | bicubic | trilinear | "
                                  f"area | nearest-exact (got {mode})")
    if mode == "nearest":
        fn = (nd.upsample_nearest1d, nd.upsample_nearest2d, nd.upsample_nearest3d)[dim - 1] if dim <= 3 else None
        if fn is None:
            raise NotImplementedError(f"[interpolate] nearest mode supports 3D-5D input, got {input.dim()}D")
        return fn(input, output_size, *scales)
    if mode == "nearest-exact":
        fn = ((nd._upsample_nearest_exact1d, nd._upsample_nearest_exact2d, nd._upsample_nearest_exact3d)[dim - 1]
              if dim <= 3 else None)
        if fn is None:
            raise NotImplementedError(f"[interpolate] nearest-exact mode supports 3D-5D input, got {input.dim()}D")
        return fn(input, output_size, *scales)
    if mode == "area":
        if dim > 3:
            raise NotImplementedError(f"[interpolate] area mode supports 3D-5D input, got {input.dim()}D")
        return (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d)[dim - 1](input, output_size)
    if mode == "linear":
        return nd.upsample_linear1d(input, output_size, align_corners, *scales)
    if antialias:
        return _interpolate_aa(input, output_size, scales, align_corners, mode == "bicubic")
    if mode == "bilinear":
        return nd.upsample_bilinear2d(input, output_size, align_corners, *scales)
    if mode == "bicubic":
        return nd.upsample_bicubic2d(input, output_size, align_corners, *scales)
    return nd.upsample_trilinear3d(input, output_size, align_corners, *scales)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of :func:`interpolate` (warns, as torch does)."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='nearest')``."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ---------------------------------------------------------------- sampling grids

_ALIGN_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. "
                  "Please specify align_corners=True if the old behavior is desired. See the documentation of "
                  "grid_sample for details.")


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Samples ``input`` at the normalised ``[-1, 1]`` locations in ``grid``.

    Args:
        input: Tensor ``(N, C, H_in, W_in)`` or ``(N, C, D_in, H_in, W_in)``.
        grid: Tensor ``(N, H_out, W_out, 2)`` of ``(x, y)`` locations, or ``(N, D_out, H_out, W_out, 3)`` of
            ``(x, y, z)`` locations for 5-D input.
        mode: ``'bilinear'``, ``'nearest'`` or ``'bicubic'`` (4-D input only).
        padding_mode: ``'zeros'``, ``'border'`` or ``'reflection'`` for out-of-range locations.
        align_corners: -1 and 1 are the centres (True) or the outer edges (False) of the corner pixels.
    """
    modes = {"bilinear": 0, "nearest": 1, "bicubic": 2}
    pads = {"zeros": 0, "border": 1, "reflection": 2}
    if mode not in modes:
        raise ValueError(f"[grid_sample] expected mode to be 'bilinear', 'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in pads:
        raise ValueError(f"[grid_sample] expected padding_mode to be 'zeros', 'border', or 'reflection', but got: "
                         f"'{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    if input.dim() not in (4, 5):
        raise ValueError(f"[grid_sample] expected 4-D (N, C, H, W) or 5-D (N, C, D, H, W) input, got "
                         f"{tuple(input.shape)}")
    k = input.dim() - 2
    if grid.dim() != input.dim() or grid.shape[-1] != k or grid.shape[0] != input.shape[0]:
        want = "H_out, W_out, 2" if k == 2 else "D_out, H_out, W_out, 3"
        raise ValueError(f"[grid_sample] expected grid of shape ({input.shape[0]}, {want}) for input of "
                         f"shape {tuple(input.shape)}, got {tuple(grid.shape)}")
    if input.dtype != grid.dtype:
        raise TypeError(f"[grid_sample] expected input and grid to have the same dtype, got {input.dtype} and "
                        f"{grid.dtype}")
    if any(s <= 0 for s in input.shape[2:]):
        raise ValueError(f"[grid_sample] expected input to have non-empty spatial dims, got {tuple(input.shape)}")
    if k == 3 and mode == "bicubic":
        raise ValueError("[grid_sample] bicubic interpolation only supports 4-D input, got "
                         f"{tuple(input.shape)}")
    fn = nd.grid_sampler_2d if k == 2 else nd.grid_sampler_3d
    return fn(input, grid, modes[mode], pads[padding_mode], align_corners)


def _linspace_neg_one(n, align_corners, like):
    if n <= 1:
        return like.new_zeros((1,))
    r = nd.linspace(-1.0, 1.0, n, dtype=like.dtype, device=like.device)
    return r if align_corners else r * ((n - 1) / n)


def affine_grid(theta, size, align_corners=None):
    """Sampling grid for :func:`grid_sample` from a batch of affine matrices.

    Args:
        theta: Tensor ``(N, 2, 3)`` (2-D) or ``(N, 3, 4)`` (3-D).
        size: Target size ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        align_corners: As in :func:`grid_sample`.

    Returns:
        Tensor ``(N, H, W, 2)`` or ``(N, D, H, W, 3)``.
    """
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    if not theta.is_floating_point():
        raise ValueError(f"[affine_grid] Expected theta to have floating point type, but got {theta.dtype}")
    size = list(size)
    if len(size) == 4:
        if theta.dim() != 3 or theta.shape[-2] != 2 or theta.shape[-1] != 3:
            raise ValueError(f"[affine_grid] Expected a batch of 2D affine matrices of shape Nx2x3 for size {size}. "
                             f"Got {tuple(theta.shape)}.")
        spatial = size[-2:]
    elif len(size) == 5:
        if theta.dim() != 3 or theta.shape[-2] != 3 or theta.shape[-1] != 4:
            raise ValueError(f"[affine_grid] Expected a batch of 3D affine matrices of shape Nx3x4 for size {size}. "
                             f"Got {tuple(theta.shape)}.")
        spatial = size[-3:]
    else:
        raise NotImplementedError(f"[affine_grid] affine_grid only supports 4D and 5D sizes, for 2D and 3D affine "
                                  f"transforms, respectively. Got size {size}.")
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the documentation of "
                      "affine_grid for details.", stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"[affine_grid] Expected non-zero, positive output size. Got {size}")
    # Base grid of homogeneous coordinates (x, y[, z], 1), x varying fastest, then one batched matmul.
    axes = [_linspace_neg_one(s, align_corners, theta) for s in reversed(spatial)]  # x, y[, z]
    grids = nd.meshgrid(*reversed(axes), indexing="ij")  # (z,) y, x, each of shape spatial
    coords = list(reversed(grids)) + [theta.new_ones(tuple(spatial))]
    base = nd.stack(coords, -1).reshape(1, -1, len(coords))
    n = size[0]
    grid = base.expand(n, base.shape[1], base.shape[2]).matmul(theta.transpose(1, 2))
    return grid.reshape([n] + list(spatial) + [len(coords) - 1])


# ---------------------------------------------------------------- rearrangements

def pixel_shuffle(input, upscale_factor):
    """Rearranges ``(*, C r^2, H, W)`` into ``(*, C, H r, W r)``.

    Args:
        input: Tensor with at least 3 dims.
        upscale_factor: The factor ``r``.
    """
    if input.dim() < 3:
        raise ValueError(f"[pixel_shuffle] expects input to have at least 3 dimensions, but got input with "
                         f"{input.dim()} dimension(s)")
    if input.shape[-3] % (upscale_factor * upscale_factor):
        raise ValueError(f"[pixel_shuffle] expects its input's 'channel' dimension to be divisible by the square of "
                         f"upscale_factor, but input.size(-3)={input.shape[-3]} is not divisible by "
                         f"{upscale_factor * upscale_factor}")
    return nd.pixel_shuffle(input, upscale_factor)


def pixel_unshuffle(input, downscale_factor):
    """Rearranges ``(*, C, H r, W r)`` into ``(*, C r^2, H, W)`` (inverse of :func:`pixel_shuffle`).

    Args:
        input: Tensor with at least 3 dims.
        downscale_factor: The factor ``r``.
    """
    if input.dim() < 3:
        raise ValueError(f"[pixel_unshuffle] expects input to have at least 3 dimensions, but got input with "
                         f"{input.dim()} dimension(s)")
    if input.shape[-2] % downscale_factor or input.shape[-1] % downscale_factor:
        raise ValueError(f"[pixel_unshuffle] expects height and width to be divisible by downscale_factor, but "
                         f"input has shape {tuple(input.shape)} and downscale_factor={downscale_factor}")
    return nd.pixel_unshuffle(input, downscale_factor)


def channel_shuffle(input, groups):
    """Splits the channels (dim 1) into ``groups`` groups and interleaves them.

    Args:
        input: Tensor ``(N, C, *)`` with ``C`` divisible by ``groups``.
        groups: Number of groups.
    """
    if input.dim() < 3:
        raise ValueError(f"[channel_shuffle] expects input to have at least 3 dimensions, but got input with "
                         f"{input.dim()} dimension(s)")
    if groups <= 0 or input.shape[1] % groups:
        raise ValueError(f"[channel_shuffle] Number of channels must be divisible by groups. Got "
                         f"{input.shape[1]} channels and {groups} groups.")
    return nd.channel_shuffle(input, groups)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extracts sliding local blocks (im2col): ``(N, C, H, W)`` -> ``(N, C k_h k_w, L)``.

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: Block size.
        dilation: Spacing between block elements.
        padding: Implicit zero padding.
        stride: Step between blocks.
    """
    if input.dim() not in (3, 4):
        raise NotImplementedError(f"[unfold] Input Error: Only 3D or 4D input Tensors are supported (got "
                                  f"{input.dim()}D)")
    return nd.im2col(input, _pair(kernel_size), _pair(dilation), _pair(padding), _pair(stride))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sums sliding local blocks back into an image (col2im, the adjoint of :func:`unfold`).

    Args:
        input: Tensor ``(N, C k_h k_w, L)`` or ``(C k_h k_w, L)``.
        output_size: Spatial size ``(H, W)`` of the output.
        kernel_size: Block size.
        dilation: Spacing between block elements.
        padding: Implicit zero padding.
        stride: Step between blocks.
    """
    if input.dim() not in (2, 3):
        raise NotImplementedError(f"[fold] Input Error: Only unbatched (2D) or batched (3D) input Tensors are "
                                  f"supported (got {input.dim()}D)")
    return nd.col2im(input, _pair(output_size), _pair(kernel_size), _pair(dilation), _pair(padding), _pair(stride))
