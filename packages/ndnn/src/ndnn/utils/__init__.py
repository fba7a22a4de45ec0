"""``nd.nn.utils``: gradient clipping, parameter vectors, weight/spectral norm, rnn packing."""
from __future__ import annotations

__all__: list[str] = []
