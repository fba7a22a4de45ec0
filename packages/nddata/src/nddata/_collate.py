"""Collation: turning a list of samples into a batch (``default_collate``), and converting NumPy
data to tensors without batching (``default_convert``), as ``torch.utils.data._utils.collate``.

``collate`` walks the sample structure (mappings, namedtuples, dataclasses, sequences) and
hands the leaves to the function registered for their type in ``collate_fn_map``.
"""
from __future__ import annotations

import collections.abc
import copy
import dataclasses
import functools
import re
from typing import Callable

import numpy as np

import ndcore

__all__ = [
    "collate", "collate_float_fn", "collate_int_fn", "collate_numpy_array_fn", "collate_numpy_scalar_fn",
    "collate_str_fn", "collate_tensor_fn", "default_collate", "default_collate_fn_map", "default_convert",
]

np_str_obj_array_pattern = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}")

# Set by a DataLoader worker to allocate batch tensors in the shared-memory segment it sends
# back (see _shm.Arena); None in the main process, where batches stay in private memory.
_out_allocator: Callable | None = None


def _is_dataclass_instance(obj) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _rebuild_dataclass(elem, values: dict):
    """An instance of ``type(elem)`` with the given field values (init fields through the
    constructor, the others set afterwards, frozen or not)."""
    fields = dataclasses.fields(elem)
    out = type(elem)(**{f.name: values[f.name] for f in fields if f.init})
    for f in fields:
        if not f.init:
            object.__setattr__(out, f.name, values[f.name])
    return out


def default_convert(data):
    """Converts NumPy arrays and scalars in ``data`` to tensors, keeping the structure.

    The default ``collate_fn`` when automatic batching is off (``batch_size=None``). Strings,
    bytes and object arrays are left as they are; tuples become lists (as in torch).

    Args:
        data: One sample.
    """
    elem_type = type(data)
    if isinstance(data, ndcore.Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_", "bytes_"):
        if elem_type.__name__ == "ndarray" and np_str_obj_array_pattern.search(data.dtype.str) is not None:
            return data
        # np.asarray: ndcore.as_tensor takes a bare NumPy scalar for a Python number (float32)
        return ndcore.as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if _is_dataclass_instance(data):
        return _rebuild_dataclass(data, {f.name: default_convert(getattr(data, f.name))
                                         for f in dataclasses.fields(data)})
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def collate(batch, *, collate_fn_map: dict | None = None):
    """Collates a list of samples, dispatching leaves through ``collate_fn_map``.

    Args:
        batch: The samples (a non-empty sequence).
        collate_fn_map: ``{type or tuple of types: fn(batch, *, collate_fn_map)}``; an element's
            exact type is looked up first, then each key in insertion order with isinstance.

    Mappings collate per key (keeping the mapping type), namedtuples and dataclasses per field
    (keeping the type), other sequences are transposed (tuples come back as lists).
    """
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            values = {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem}
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(values)
                return clone
            return elem_type(values)
        except TypeError:
            return {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return elem_type(*(collate(samples, collate_fn_map=collate_fn_map) for samples in zip(*batch)))
    if _is_dataclass_instance(elem):
        for d in batch:
            if type(d) is not elem_type:
                raise TypeError(f"default_collate: dataclass batch mixes {elem_type.__name__} and {type(d).__name__}")
        return _rebuild_dataclass(elem, {
            f.name: collate([getattr(d, f.name) for d in batch], collate_fn_map=collate_fn_map)
            for f in dataclasses.fields(elem)})
    if isinstance(elem, collections.abc.Sequence):
        elem_size = len(elem)
        if any(n != elem_size for n in set(map(len, batch))):  # map/set run in C, unlike a genexpr
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = collate(samples, collate_fn_map=collate_fn_map)
                return clone
            return elem_type([collate(samples, collate_fn_map=collate_fn_map) for samples in transposed])
        except TypeError:
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def _stack(batch, out=None):
    """``ndcore.stack(batch)`` (one C++ call, which also promotes mixed dtypes), written into
    ``out`` when given, failing with torch's message on unequal shapes."""
    try:
        return ndcore.stack(batch, 0) if out is None else ndcore.stack(batch, 0, out=out)
    except RuntimeError:
        # Only the failure path pays for reading every shape (0.3 us each, a third of a batch's
        # collation otherwise).
        shape = batch[0].shape
        for i, t in enumerate(batch):
            if t.shape != shape:
                raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(shape)} at entry 0 "
                                   f"and {list(t.shape)} at entry {i}") from None
        raise


def collate_tensor_fn(batch, *, collate_fn_map=None):
    """Stacks tensors along a new first dimension; in a DataLoader worker, directly into the
    shared memory the batch is sent back in."""
    elem = batch[0]
    if _out_allocator is not None and elem.is_cpu:
        dtype = functools.reduce(ndcore.promote_types, {t.dtype for t in batch})
        out = _out_allocator((len(batch),) + tuple(elem.shape), dtype)
        if out is not None:
            return _stack(batch, out)
    return _stack(batch)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    elem = batch[0]
    if np_str_obj_array_pattern.search(elem.dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    return collate([ndcore.as_tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return ndcore.as_tensor(np.asarray(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    # NumPy only packs the Python numbers into a buffer here, as ndcore.tensor does itself;
    # calling it directly skips tensor()'s generic nested-data checks (a third of a batch's
    # collation time for MNIST-sized samples).
    return ndcore.from_numpy(np.array(batch, dtype=np.float64))


def collate_int_fn(batch, *, collate_fn_map=None):
    arr = np.array(batch)
    if arr.dtype.kind in "uO" and all(isinstance(b, int) for b in batch):
        raise ValueError(f"default_collate: integer batch {batch[:8]}... does not fit in int64 "
                         "(Overflow when unpacking long long)")
    if arr.dtype.kind not in "ib":  # a mix with floats: the default float dtype, as torch.tensor
        return ndcore.tensor(batch)
    return ndcore.from_numpy(arr if arr.dtype.kind == "b" else arr.astype(np.int64, copy=False))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map: dict = {
    ndcore.Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def default_collate(batch):
    """Collates samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors are stacked (new first dim), NumPy arrays and scalars become stacked tensors,
    Python ints/floats/bools become int64/float64/bool tensors, strings and bytes stay as
    lists, and containers (dict, namedtuple, dataclass, list/tuple) keep their structure with
    each field collated. Samples of a list batch must all have the same length.

    Args:
        batch: The list of samples.
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)
