"""Test helpers shared by nd's packages: the op database and a NumPy-backed fake device."""
from .opdb import OPDB, OpInfo
from ._fake_device import FakeDevice, register_fake_device

__all__ = ["OPDB", "OpInfo", "FakeDevice", "register_fake_device"]
