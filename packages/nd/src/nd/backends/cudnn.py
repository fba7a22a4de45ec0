"""``nd.backends.cudnn`` flags. They are plain settings here; a GPU backend reads them."""
from __future__ import annotations

from ndcore.devices import device_types

benchmark: bool = False
deterministic: bool = False
enabled: bool = True
allow_tf32: bool = True


def is_available() -> bool:
    """True when a 'cuda' device type is registered (by ndcuda)."""
    return "cuda" in device_types()


def version():
    return None


__all__ = ["benchmark", "deterministic", "enabled", "allow_tf32", "is_available", "version"]
