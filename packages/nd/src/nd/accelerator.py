"""``nd.accelerator``: the current accelerator, from ndcore's device registry (torch.accelerator)."""
from __future__ import annotations

from ndcore.devices import current_accelerator, current_device_index, device_count, is_available, set_device_index

__all__ = ["is_available", "current_accelerator", "device_count", "set_device_index", "current_device_index"]
