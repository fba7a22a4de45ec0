"""Single-process data parallelism over the devices of the registry (``nd.nn.DataParallel``).

Each forward scatters the batch along ``dim`` over ``device_ids``, runs a replica of the module
on each device and gathers the outputs on ``output_device``. Copies between devices are
recorded by autograd (``Tensor.to``), so gradients flow back to the original parameters on
``device_ids[0]``. Without an accelerator it is a transparent wrapper, as torch's is on CPU.
"""
from __future__ import annotations

import contextlib
import warnings

import ndcore
import ndgrad
from ndcore import Tensor

from ..modules.module import Module

__all__ = ["DataParallel", "data_parallel", "scatter", "gather", "replicate", "parallel_apply"]


def _device_type():
    acc = ndcore.devices.current_accelerator()
    return None if acc is None else acc.type


def _device_index(d, device_type) -> int:
    if isinstance(d, bool):
        raise TypeError(f"[DataParallel] invalid device {d!r}")
    if isinstance(d, int):
        return d
    dev = ndcore.device(d)
    if dev.type != device_type:
        raise ValueError(f"[DataParallel] expected a {device_type} device, got {dev}")
    return dev.index or 0


def _target(device_type, index: int):
    # output_device=-1 gathers on the CPU, as in torch
    return ndcore.device("cpu") if index == -1 else ndcore.device(device_type, index)


def _chunk_sizes(n: int, chunks: int) -> list[int]:
    step = -(-n // chunks) if n else 1
    sizes = [min(step, n - i) for i in range(0, n, step)] if n else [0]
    return sizes


def scatter(inputs, devices, dim: int = 0):
    """Splits the tensors in ``inputs`` (nested tuples/lists/dicts) along ``dim`` over ``devices``;
    other values are repeated. Returns one element per chunk (fewer if the batch is small)."""
    def rec(obj):
        if isinstance(obj, Tensor):
            pieces = obj.split(_chunk_sizes(obj.shape[dim], len(devices)), dim)
            return [p.to(dev) for p, dev in zip(pieces, devices)]
        if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
            return [type(obj)(*args) for args in zip(*map(rec, obj))]
        if isinstance(obj, tuple) and obj:
            return [tuple(x) for x in zip(*map(rec, obj))]
        if isinstance(obj, list) and obj:
            return [list(x) for x in zip(*map(rec, obj))]
        if isinstance(obj, dict) and obj:
            return [type(obj)(zip(obj.keys(), vals)) for vals in zip(*map(rec, obj.values()))]
        return [obj for _ in devices]

    return rec(inputs)


def _scatter_kwargs(inputs, kwargs, devices, dim):
    scattered_inputs = scatter(inputs, devices, dim) if inputs else []
    scattered_kwargs = scatter(kwargs, devices, dim) if kwargs else []
    if len(scattered_inputs) < len(scattered_kwargs):
        scattered_inputs.extend(() for _ in range(len(scattered_kwargs) - len(scattered_inputs)))
    elif len(scattered_kwargs) < len(scattered_inputs):
        scattered_kwargs.extend({} for _ in range(len(scattered_inputs) - len(scattered_kwargs)))
    return tuple(scattered_inputs), tuple(scattered_kwargs)


def gather(outputs, target_device, dim: int = 0):
    """Concatenates per-device outputs (tensors or nested tuples/lists/dicts of them) along ``dim``
    on ``target_device``; 0-d tensors are stacked into a vector."""
    target = ndcore.device(target_device)

    def rec(outs):
        first = outs[0]
        if isinstance(first, Tensor):
            moved = [o.to(target) for o in outs]
            if all(o.dim() == 0 for o in moved):
                warnings.warn("Was asked to gather along dimension 0, but all input tensors were scalars; will "
                              "instead unsqueeze and return a vector.", stacklevel=3)
                return ndcore.stack(moved)
            return ndcore.cat(moved, dim)
        if first is None:
            return None
        if isinstance(first, dict):
            if not all(len(first) == len(o) for o in outs):
                raise ValueError("All dicts must have the same number of keys")
            return type(first)((k, rec([o[k] for o in outs])) for k in first)
        if isinstance(first, tuple) and hasattr(type(first), "_fields"):
            return type(first)(*map(rec, zip(*outs)))
        if isinstance(first, (tuple, list)):
            return type(first)(map(rec, zip(*outs)))
        return first

    return rec(list(outputs))


def replicate(network: Module, devices, detach: bool = False) -> list[Module]:
    """Copies of ``network`` whose parameters and buffers are on each of ``devices``.

    The parameter copies are recorded by autograd (unless ``detach``), so gradients of the
    replicas' outputs reach the original parameters.
    """
    modules = list(network.modules())
    index = {id(m): i for i, m in enumerate(modules)}
    replicas = []
    for dev in devices:
        copies = []
        for m in modules:
            r = type(m).__new__(type(m))
            # a shallow copy (shares hooks and plain attributes) with its own tensor/child dicts
            object.__setattr__(r, "__dict__", {**m.__dict__, "_parameters": {}, "_buffers": {}, "_modules": {}})
            copies.append(r)
        for m, r in zip(modules, copies):
            for name, p in m._parameters.items():
                if p is None:
                    r._parameters[name] = None
                else:
                    with ndgrad.no_grad() if detach else contextlib.nullcontext():
                        r._parameters[name] = p.to(dev)
            for name, b in m._buffers.items():
                r._buffers[name] = None if b is None else b.to(dev)
            for name, child in m._modules.items():
                r._modules[name] = None if child is None else copies[index[id(child)]]
        replicas.append(copies[0])
    return replicas


def parallel_apply(modules, inputs, kwargs_tup=None, devices=None) -> list:
    """Runs ``modules[i](*inputs[i], **kwargs_tup[i])`` for each replica.

    Device backends run asynchronously, so launching the replicas one after another already
    overlaps their work; the calls are made in order from this thread.
    """
    if len(modules) != len(inputs):
        raise ValueError(f"The number of modules {len(modules)} is not equal to the number of inputs {len(inputs)}")
    kwargs_tup = kwargs_tup if kwargs_tup is not None else ({},) * len(modules)
    outputs = []
    for m, args, kw in zip(modules, inputs, kwargs_tup):
        args = args if isinstance(args, (list, tuple)) else (args,)
        outputs.append(m(*args, **kw))
    return outputs


class DataParallel(Module):
    """Splits each input batch along ``dim`` across devices and runs a module replica on each.

    Args:
        module: The module to parallelize (its parameters must live on ``device_ids[0]``).
        device_ids: Device indices (or devices) of the accelerator type; default: all of them.
        output_device: Where outputs are gathered (-1: the CPU); default ``device_ids[0]``.
        dim: The batch dimension. Default: 0.
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0) -> None:
        super().__init__()
        self.module = module
        device_type = _device_type()
        if device_type is None:
            self.device_ids = []
            return
        if device_ids is None:
            device_ids = list(range(ndcore.devices.device_count(device_type)))
        if not device_ids:
            raise RuntimeError("[DataParallel] no available devices were found")
        self.dim = dim
        self.device_type = device_type
        self.device_ids = [_device_index(d, device_type) for d in device_ids]
        self.output_device = _device_index(device_ids[0] if output_device is None else output_device, device_type)
        self.src_device_obj = ndcore.device(device_type, self.device_ids[0])
        if len(self.device_ids) == 1:
            self.module.to(self.src_device_obj)

    def _devices(self, ids):
        return [ndcore.device(self.device_type, i) for i in ids]

    def forward(self, *inputs, **kwargs):
        if not self.device_ids:
            return self.module(*inputs, **kwargs)
        for t in (*self.module.parameters(), *self.module.buffers()):
            if t.device != self.src_device_obj:
                raise RuntimeError(f"module must have its parameters and buffers on device {self.src_device_obj} "
                                   f"(device_ids[0]) but found one of them on device: {t.device}")
        inputs, module_kwargs = self.scatter(inputs, kwargs, self.device_ids)
        if not inputs and not module_kwargs:
            inputs, module_kwargs = ((),), ({},)
        if len(self.device_ids) == 1:
            return self.module(*inputs[0], **module_kwargs[0])
        replicas = self.replicate(self.module, self.device_ids[:len(inputs)])
        outputs = self.parallel_apply(replicas, inputs, module_kwargs)
        return self.gather(outputs, self.output_device)

    def replicate(self, module, device_ids):
        return replicate(module, self._devices(device_ids), not ndgrad.is_grad_enabled())

    def scatter(self, inputs, kwargs, device_ids):
        return _scatter_kwargs(inputs, kwargs, self._devices(device_ids), self.dim)

    def parallel_apply(self, replicas, inputs, kwargs):
        return parallel_apply(replicas, inputs, kwargs, self._devices(self.device_ids[:len(replicas)]))

    def gather(self, outputs, output_device):
        return gather(outputs, _target(self.device_type, output_device), dim=self.dim)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim: int = 0, module_kwargs=None):
    """Functional ``DataParallel``: one parallel forward of ``module`` on ``inputs``.

    Args:
        module: The module (parameters on ``device_ids[0]``).
        inputs: The positional inputs (a tensor or a tuple).
        device_ids: Device indices; default: all devices of the accelerator.
        output_device: Where to gather; default ``device_ids[0]``.
        dim: The batch dimension. Default: 0.
        module_kwargs: Keyword inputs.
    """
    inputs = inputs if isinstance(inputs, tuple) else ((inputs,) if inputs is not None else ())
    device_type = _device_type()
    if device_type is None:
        return module(*inputs, **(module_kwargs or {}))
    if device_ids is None:
        device_ids = list(range(ndcore.devices.device_count(device_type)))
    ids = [_device_index(d, device_type) for d in device_ids]
    out_id = _device_index(ids[0] if output_device is None else output_device, device_type)
    devices = [ndcore.device(device_type, i) for i in ids]
    src = devices[0]
    for t in (*module.parameters(), *module.buffers()):
        if t.device != src:
            raise RuntimeError(f"module must have its parameters and buffers on device {src} (device_ids[0]) but "
                               f"found one of them on device: {t.device}")
    scattered, kw = _scatter_kwargs(inputs, module_kwargs or {}, devices, dim)
    if not scattered and not kw:
        scattered, kw = ((),), ({},)
    if len(devices) == 1:
        return module(*scattered[0], **kw[0])
    replicas = replicate(module, devices[:len(scattered)], not ndgrad.is_grad_enabled())
    outputs = parallel_apply(replicas, scattered, kw, devices[:len(replicas)])
    return gather(outputs, _target(device_type, out_id), dim)
