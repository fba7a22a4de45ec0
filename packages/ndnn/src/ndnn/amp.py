"""Mixed precision (``nd.amp``, ``nd.autocast``): the autocast context and GradScaler, as torch.amp.

Autocast itself lives in ndcore's dispatcher (see Note [Autocast in the dispatcher] in
csrc/core/dispatch.h): each op-table row may sit on one of torch's CPU autocast lists, and while
autocast is on, the dispatcher casts that row's floating inputs through the ordinary ``_to_copy``
op (so autograd records the casts and float32 parameters receive float32 gradients):

* ``lower`` (mm, bmm, matmul, addmm, baddbmm, linear, conv*): float32 inputs run in the autocast
  dtype (bfloat16 by default on CPU);
* ``fp32`` (nll_loss, cross_entropy, binary_cross_entropy*, ctc_loss, prod, cdist, linalg ...):
  16-bit inputs run in float32;
* ``promote`` (cat, stack): inputs are cast to the widest floating input dtype.

float64 inputs are never cast. This module only sets that thread-local state and provides
GradScaler, which scales the loss so small float16 gradients do not underflow and skips
optimizer steps whose gradients overflowed.
"""
from __future__ import annotations

import functools
import warnings

import ndcore as nd
from ndcore import _C
from ndgrad import no_grad

__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled"]

_DEFAULT_DTYPE = {"cpu": nd.bfloat16}


def _device_type(device_type) -> str:
    if not isinstance(device_type, str):
        raise TypeError(f"[autocast] expected a device type string such as 'cpu', got {type(device_type).__name__}")
    return device_type.split(":")[0]


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """Whether autocast is on for ``device_type`` in this thread.

    Args:
        device_type: a registered device type ('cpu', or e.g. 'cuda' when ndcuda is loaded).
    """
    return _C._get_autocast_state(_device_type(device_type))[0]


def get_autocast_dtype(device_type: str = "cpu"):
    """The lower-precision dtype autocast uses for ``device_type`` in this thread.

    Args:
        device_type: a registered device type.
    """
    dev = _device_type(device_type)
    enabled, dtype = _C._get_autocast_state(dev)
    return dtype if enabled else _DEFAULT_DTYPE.get(dev, nd.float16)


def _lowering_dtype(device_type: str):
    """The autocast dtype while autocast is on for ``device_type``, else None.

    For ops on torch's CPU 'lower' list that nd computes in float32 because their fused kernels
    have no 16-bit variant (scaled_dot_product_attention, prelu, the recurrent layers): they run
    with autocast suspended and round their result to this dtype, the dtype torch's has.
    """
    enabled, dtype = _C._get_autocast_state(device_type)
    return dtype if enabled else None


class autocast:
    """Context manager and decorator running the ops inside it in mixed precision (torch.autocast).

    Inside the region, matrix products and convolutions of float32 inputs compute in ``dtype``,
    while precision-sensitive ops (losses, prod, linalg) compute in float32; outside, every op runs
    in its inputs' dtype. Regions nest: an inner ``autocast(enabled=False)`` turns it off and the
    outer state returns on exit. The state is per thread, as in torch.

    Args:
        device_type: the device type to autocast ('cpu').
        dtype: the lower-precision dtype, ``nd.bfloat16`` (CPU default) or ``nd.float16``.
        enabled: whether autocast is on inside the region.
        cache_enabled: accepted for torch compatibility; casts are not cached (each use of a
            float32 weight casts it again, which is correct but repeats the copy).
    """

    def __init__(self, device_type: str = "cpu", dtype=None, enabled: bool = True, cache_enabled: bool | None = None):
        self.device = _device_type(device_type)
        _C._get_autocast_state(self.device)  # raises for an unknown device type
        self.fast_dtype = _DEFAULT_DTYPE.get(self.device, nd.float16) if dtype is None else dtype
        self._enabled = bool(enabled)
        self.cache_enabled = cache_enabled
        if self._enabled and self.fast_dtype not in (nd.bfloat16, nd.float16):
            warnings.warn(f"In {self.device} autocast, but the target dtype {self.fast_dtype} is not supported "
                          "(expected nd.bfloat16 or nd.float16). Disabling autocast.", stacklevel=2)
            self._enabled = False
        self._prev = []

    def __enter__(self):
        self._prev.append(_C._get_autocast_state(self.device))
        _C._set_autocast_state(self.device, self._enabled, self.fast_dtype)
        return self

    def __exit__(self, exc_type, exc, tb):
        enabled, dtype = self._prev.pop()
        _C._set_autocast_state(self.device, enabled, dtype)
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self.cache_enabled):
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return f"autocast(device_type={self.device!r}, dtype={self.fast_dtype}, enabled={self._enabled})"


_READY, _UNSCALED, _STEPPED = 0, 1, 2


def _grads_of(optimizer):
    try:
        groups = optimizer.param_groups
    except AttributeError:
        raise TypeError(f"[GradScaler] expected an optimizer with param_groups, got {type(optimizer).__name__}") from None
    return [p.grad for g in groups for p in g["params"] if p.grad is not None]


class GradScaler:
    """Loss scaling for mixed-precision training (torch.amp.GradScaler).

    ``scale(loss)`` multiplies the loss by the scale S so small float16 gradients survive;
    ``step(optimizer)`` first unscales the gradients (``g <- g / S``) and skips the step when any
    of them is inf or NaN; ``update()`` then backs off (``S <- S * backoff_factor``) after a
    skipped step, or grows the scale (``S <- S * growth_factor``) after ``growth_interval``
    consecutive good steps::

        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    A skipped step sets ``optimizer._step_skipped = True`` (False after a real step) and warns once
    per scaler, so schedulers and users can tell.

    Args:
        device: the device of the gradients ('cpu').
        init_scale: the initial scale factor.
        growth_factor: factor the scale is multiplied by after ``growth_interval`` good steps.
        backoff_factor: factor the scale is multiplied by after a step with inf/NaN gradients.
        growth_interval: consecutive good steps before the scale grows.
        enabled: when False every method is a pass-through (``step`` just calls the optimizer).
    """

    def __init__(self, device: str = "cpu", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        self._device = _device_type(device)
        self._enabled = bool(enabled)
        if self._enabled:
            if growth_factor <= 1.0:
                raise ValueError(f"[GradScaler] growth_factor should be > 1, got {growth_factor}")
            if backoff_factor >= 1.0:
                raise ValueError(f"[GradScaler] backoff_factor should be < 1, got {backoff_factor}")
            if not isinstance(growth_interval, int) or growth_interval <= 0:
                raise ValueError(f"[GradScaler] growth_interval should be a positive int, got {growth_interval!r}")
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._init_growth_tracker = 0
        self._scale = None
        self._growth_tracker = None
        self._per_optimizer_states: dict = {}
        self._warned_skip = False

    # ---- scaling -------------------------------------------------------------------------------
    def _lazy_init(self):
        if self._scale is None:
            self._scale = nd.full((1,), self._init_scale, dtype=nd.float32, device=self._device)
            self._growth_tracker = nd.full((1,), self._init_growth_tracker, dtype=nd.int32, device=self._device)

    def _state(self, optimizer):
        return self._per_optimizer_states.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def scale(self, outputs):
        """Multiplies ``outputs`` (a tensor, or lists/tuples/dicts of them) by the scale factor.

        Args:
            outputs: the loss (or losses) to scale before ``backward()``.
        """
        if not self._enabled:
            return outputs
        self._lazy_init()
        if isinstance(outputs, nd.Tensor):
            return outputs * self._scale.to(outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, dict):
            return {k: self.scale(v) for k, v in outputs.items()}
        raise TypeError(f"[GradScaler.scale] expected a tensor or an iterable of tensors, got {type(outputs).__name__}")

    def unscale_(self, optimizer):
        """Divides ``optimizer``'s gradients by the scale in place and records inf/NaN among them.

        Call it before gradient clipping; ``step`` then does not unscale again.

        Args:
            optimizer: any object with ``param_groups`` (a list of dicts with ``params``).
        """
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("[GradScaler.unscale_] unscale_() has already been called on this optimizer since the "
                               "last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("[GradScaler.unscale_] unscale_() is being called after step().")
        self._lazy_init()
        inv_scale = nd.full((1,), 1.0 / float(self._scale.item()), dtype=nd.float32, device=self._device)
        found_inf = nd.zeros(1, dtype=nd.float32, device=self._device)
        grads = _grads_of(optimizer)
        for g in grads:
            if g.dtype == nd.float16:
                raise ValueError("[GradScaler.unscale_] attempting to unscale float16 gradients; keep the parameters "
                                 "in float32 and let autocast cast them")
        with no_grad():
            _C._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)
        state["found_inf"] = found_inf
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """Unscales the gradients (unless ``unscale_`` ran) and calls ``optimizer.step(*args,
        **kwargs)`` only if none of them is inf/NaN.

        Args:
            optimizer: the optimizer to step.
            *args: passed to ``optimizer.step``.
            **kwargs: passed to ``optimizer.step`` (a ``closure`` is not supported while enabled).

        Returns:
            What ``optimizer.step`` returned, or None when the step was skipped.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("[GradScaler.step] closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("[GradScaler.step] step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        state["stage"] = _STEPPED
        if float(state["found_inf"].item()) == 0.0:
            optimizer._step_skipped = False
            return optimizer.step(*args, **kwargs)
        optimizer._step_skipped = True
        if not self._warned_skip:
            self._warned_skip = True
            warnings.warn(f"GradScaler skipped optimizer.step() because the gradients contain inf or NaN (scale "
                          f"{self.get_scale():g}); update() will reduce the scale. Occasional skips, mostly in the first "
                          "iterations, are expected with loss scaling.", RuntimeWarning, stacklevel=2)
        return None

    def update(self, new_scale=None):
        """Updates the scale after the iteration's ``step`` calls (backoff or growth, see class doc).

        Args:
            new_scale: if given (a float or a one-element tensor), sets the scale to it instead.
        """
        if not self._enabled:
            return
        self._lazy_init()
        if new_scale is not None:
            if isinstance(new_scale, nd.Tensor):
                if new_scale.numel() != 1:
                    raise ValueError("[GradScaler.update] new_scale should be a one-element tensor, got shape "
                                     f"{tuple(new_scale.shape)}")
                value = float(new_scale.item())
            else:
                value = float(new_scale)
            self._scale.fill_(value)
        else:
            found = [s["found_inf"] for s in self._per_optimizer_states.values() if s["found_inf"] is not None]
            if not found:
                raise RuntimeError("[GradScaler.update] no inf checks were recorded prior to update(); call step() "
                                   "(or unscale_()) first.")
            found_inf = found[0]
            for f in found[1:]:
                found_inf = found_inf + f
            _C._amp_update_scale_(self._scale, self._growth_tracker, found_inf, self._growth_factor,
                                  self._backoff_factor, self._growth_interval)
        self._per_optimizer_states = {}

    # ---- accessors and state -------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale factor (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        if self._growth_tracker is None:
            return self._init_growth_tracker
        return int(self._growth_tracker.item())

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """The scale, factors, interval and growth tracker (empty when disabled), as torch's."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores what ``state_dict`` returned.

        Args:
            state_dict: a dict from ``state_dict()`` (of this class or torch's GradScaler).
        """
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("[GradScaler.load_state_dict] the source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._scale is not None:
            self._scale.fill_(self._init_scale)
            self._growth_tracker.fill_(self._init_growth_tracker)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_per_optimizer_states"] = {}
        return state
