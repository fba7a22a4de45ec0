"""``detect_anomaly``: NaN/inf produced in backward raises, naming the forward op and where it ran."""
from __future__ import annotations

import contextlib

from ._engine import _anomaly


class detect_anomaly(contextlib.ContextDecorator):  # noqa: N801 - torch's spelling
    """Records the Python stack of each forward op, and checks every backward output for NaN/inf."""

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = dict(_anomaly)
        _anomaly["on"] = True
        _anomaly["check_nan"] = self.check_nan
        return self

    def __exit__(self, *exc):
        _anomaly.update(self._prev)
        return False


class set_detect_anomaly(contextlib.ContextDecorator):  # noqa: N801
    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self._prev = dict(_anomaly)
        _anomaly["on"] = mode
        _anomaly["check_nan"] = check_nan

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly.update(self._prev)
        return False
