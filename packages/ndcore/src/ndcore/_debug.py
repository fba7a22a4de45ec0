"""Debug modes that ride on the dispatcher's check hook and cost nothing when off."""
from __future__ import annotations

import contextlib
import warnings

from . import _C

_POLICIES = {"allow": 0, "warn": 1, "raise": 2}
_nan_depth = 0


def _check_finite(op_name, inputs, outputs, shapes):
    for i, out in enumerate(outputs):
        if out is None or not out.dtype.is_floating_point or out.numel() == 0:
            continue
        if not bool(out.isfinite().all()):
            raise FloatingPointError(
                f"[debug_nans] op '{op_name}' produced NaN/inf in output {i} (shape {tuple(out.shape)}); "
                f"input shapes: {[tuple(s) for s in shapes]}")


class debug_nans(contextlib.ContextDecorator):  # noqa: N801 - mirrors torch's lowercase modes
    """Raise at the first op whose output holds NaN or inf.

    ``debug_nans(True)`` / ``debug_nans(False)`` switch it globally; ``with debug_nans():`` or
    ``@debug_nans()`` turn it on inside the block only and restore the enclosing state.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        if enabled is not None and not isinstance(enabled, bool):
            raise TypeError("debug_nans expects a bool")
        self._scoped = enabled is None
        self._enabled = True if enabled is None else enabled
        self._saved: list[bool] = []
        if not self._scoped:
            self._before = _state["on"]
            _set(enabled)

    def __enter__(self):
        self._saved.append(_state["on"] if self._scoped else self._before)
        _set(self._enabled)
        return self

    def __exit__(self, *exc):
        _set(self._saved.pop())
        return False


_state = {"on": False}


def _set(enabled: bool) -> None:
    _state["on"] = enabled
    _C._set_check_hook(_check_finite if enabled else None)


def set_broadcast_policy(policy: str) -> None:
    """What to do when broadcasting adds dims to an operand: 'allow' (default), 'warn' or 'raise'.

    Catches the silent (B, 1) vs (B,) broadcast that turns a loss into a (B, B) matrix.
    """
    if policy not in _POLICIES:
        raise ValueError(f"broadcast policy must be one of {sorted(_POLICIES)}, got {policy!r}")
    _C._set_rank_promotion(_POLICIES[policy])


def get_broadcast_policy() -> str:
    return {v: k for k, v in _POLICIES.items()}[_C._get_rank_promotion()]


_C._set_warn_handler(lambda msg: warnings.warn(msg, RuntimeWarning, stacklevel=2))
