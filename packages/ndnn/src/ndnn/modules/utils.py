"""Argument helpers at torch's path (``torch.nn.modules.utils._pair`` ...), for code ported from torch."""
from __future__ import annotations

from ..functional._utils import _ntuple, _pair, _quadruple, _reverse_repeat_tuple, _single, _triple  # noqa: F401

__all__: list[str] = []
