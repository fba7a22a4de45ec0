"""Grad-mode switches (thread-local, kept in ndcore's C++ dispatcher so C++ sees them too)."""
from __future__ import annotations

import contextlib

from ndcore import _C

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled",
           "is_inference_mode_enabled"]

is_grad_enabled = _C.is_grad_enabled


class _GradMode(contextlib.ContextDecorator):
    _target = False

    def __enter__(self):
        self._prev = _C.is_grad_enabled()
        _C._set_grad_enabled(self._target)
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)
        return False

    def clone(self):
        return type(self)()


class no_grad(_GradMode):  # noqa: N801 - torch's spelling
    """Context manager / decorator: ops inside are not recorded by autograd."""

    _target = False

    def __call__(self, fn=None):
        if fn is None:  # @no_grad() and @no_grad both work
            return self
        return super().__call__(fn)


class enable_grad(_GradMode):  # noqa: N801
    """Context manager / decorator: re-enables recording inside a no_grad region."""

    _target = True


class set_grad_enabled(contextlib.ContextDecorator):  # noqa: N801
    """``set_grad_enabled(False)`` switches recording off now; as a context manager it restores."""

    def __init__(self, mode: bool) -> None:
        self._prev = _C.is_grad_enabled()
        self.mode = bool(mode)
        _C._set_grad_enabled(self.mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._prev)
        return False


_inference = {"on": False}


class inference_mode(_GradMode):  # noqa: N801
    """Like no_grad (tensors made inside carry no autograd state)."""

    def __init__(self, mode: bool = True) -> None:
        self._target = not mode
        self._mode = mode

    def __enter__(self):
        self._prev_inf = _inference["on"]
        _inference["on"] = self._mode
        return super().__enter__()

    def __exit__(self, *exc):
        _inference["on"] = self._prev_inf
        return super().__exit__(*exc)


def is_inference_mode_enabled() -> bool:
    return _inference["on"]
