"""Packed variable-length sequences for the recurrent layers (``torch.nn.utils.rnn``).

A :class:`PackedSequence` stores the time steps of a batch of sequences sorted by decreasing
length, step after step: ``data[offset_t : offset_t + batch_sizes[t]]`` holds step ``t`` of the
``batch_sizes[t]`` sequences still running. Packing and unpacking are single index ops built
from the lengths, so they are differentiable and never loop over elements in Python.
"""
from __future__ import annotations

from collections import namedtuple

import ndcore as nd

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpack_sequence", "unpad_sequence", "invert_permutation"]

_PackedSequenceBase = namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


def invert_permutation(permutation):
    """The inverse of an index permutation (``None`` stays ``None``)."""
    if permutation is None:
        return None
    return nd.argsort(permutation)


class PackedSequence(_PackedSequenceBase):
    """Holds the data and ``batch_sizes`` of a packed batch of sequences.

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`, not directly.

    Args:
        data: Tensor of shape ``(sum(lengths), *)``: the packed time steps.
        batch_sizes: int64 CPU tensor; ``batch_sizes[t]`` sequences are longer than ``t``.
        sorted_indices: how the batch was permuted to sort it by length (or ``None``).
        unsorted_indices: the inverse permutation (or ``None``).
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            raise ValueError("[PackedSequence] batch_sizes is required; use pack_padded_sequence or pack_sequence "
                             "to build a PackedSequence")
        if not isinstance(batch_sizes, nd.Tensor):
            batch_sizes = nd.tensor(list(batch_sizes), dtype=nd.int64)
        if batch_sizes.device.type != "cpu":
            raise ValueError(f"[PackedSequence] batch_sizes should always be on CPU, got {batch_sizes.device}")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """Moves/casts ``data`` like ``Tensor.to``; the indices follow ``data``'s device, batch_sizes stays on CPU."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        dev = data.device
        sorted_indices = None if self.sorted_indices is None else self.sorted_indices.to(dev)
        unsorted_indices = None if self.unsorted_indices is None else self.unsorted_indices.to(dev)
        return type(self)(data, self.batch_sizes, sorted_indices, unsorted_indices)

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(dtype=nd.float64)

    def float(self):
        return self.to(dtype=nd.float32)

    def half(self):
        return self.to(dtype=nd.float16)

    @property
    def is_cuda(self):
        return self.data.device.type == "cuda"

    def is_pinned(self):
        return False


def _lengths_list(lengths) -> list[int]:
    if isinstance(lengths, nd.Tensor):
        if lengths.dim() != 1:
            raise ValueError(f"[pack_padded_sequence] expected a 1-D lengths tensor, got shape {tuple(lengths.shape)}")
        return [int(v) for v in lengths.cpu().tolist()]
    return [int(v) for v in lengths]


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Packs a padded batch of variable-length sequences.

    Args:
        input: Padded batch of shape ``(T, B, *)`` (``(B, T, *)`` if ``batch_first``).
        lengths: Length of each sequence (list or 1-D int64 CPU tensor).
        batch_first: Whether ``input`` is batch-major.
        enforce_sorted: If True, ``lengths`` must be sorted decreasingly; otherwise the batch is
            sorted here and the permutation is kept in the result.

    Returns:
        A :class:`PackedSequence`.
    """
    lens = _lengths_list(lengths)
    bdim = 0 if batch_first else 1
    if input.dim() < 2:
        raise ValueError(f"[pack_padded_sequence] expected input with at least 2 dims (T, B, *), got shape "
                         f"{tuple(input.shape)}")
    if len(lens) != input.shape[bdim]:
        raise ValueError(f"[pack_padded_sequence] expected {input.shape[bdim]} lengths (the batch size of input of "
                         f"shape {tuple(input.shape)}), got {len(lens)}")
    if enforce_sorted:
        if any(lens[i] < lens[i + 1] for i in range(len(lens) - 1)):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You "
                               "can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                               "sidestep this requirement if you do not need ONNX exportability.")
        sorted_indices = None
        order = list(range(len(lens)))
    else:
        order = sorted(range(len(lens)), key=lambda i: -lens[i])  # stable, as torch's sort(descending)
        sorted_indices = nd.tensor(order, dtype=nd.int64, device=input.device)
    slens = [lens[i] for i in order]
    if slens and slens[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' that "
                           "is <= 0")
    T = input.shape[1 - bdim]
    if slens and slens[0] > T:
        raise RuntimeError(f"[pack_padded_sequence] a length ({slens[0]}) exceeds the padded sequence length {T}")
    # (t, b) pairs of the sorted batch with t < length, in step-major order: the packed rows
    B = len(lens)
    lens_t = nd.tensor(slens, dtype=nd.int64, device=input.device)
    steps = nd.arange(slens[0] if slens else 0, dtype=nd.int64, device=input.device)
    mask = steps.unsqueeze(1) < lens_t.unsqueeze(0)
    tb = mask.nonzero()
    order_t = nd.tensor(order, dtype=nd.int64, device=input.device)
    rows = tb[:, 0] * B + order_t.index_select(0, tb[:, 1])
    x = input.transpose(0, 1) if batch_first else input
    flat = x.reshape([T * B] + list(x.shape[2:]))
    data = flat.index_select(0, rows)
    batch_sizes = mask.sum(1).cpu()
    return PackedSequence(data, batch_sizes, sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Unpacks a :class:`PackedSequence` into a padded batch (the inverse of pack_padded_sequence).

    Args:
        sequence: The packed batch.
        batch_first: Return ``(B, T, *)`` instead of ``(T, B, *)``.
        padding_value: Value of the padded positions.
        total_length: Pad to this length (>= the longest sequence) instead of the longest sequence.

    Returns:
        ``(padded, lengths)``, lengths an int64 CPU tensor in the original batch order.
    """
    data, batch_sizes = sequence.data, sequence.batch_sizes
    T = batch_sizes.shape[0]
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, but "
                             f"got total_length={total_length} and max sequence length being {T}")
        T_out = int(total_length)
    else:
        T_out = T
    B = int(batch_sizes[0]) if T else 0
    N = data.shape[0]
    # every (t, b) reads its packed row offset_t + b, or row N: a padding row appended to data
    bs = nd.cat([batch_sizes, nd.zeros(T_out - T, dtype=nd.int64)]).unsqueeze(1)
    cols = nd.arange(B, dtype=nd.int64).unsqueeze(0)
    index = nd.where(cols < bs, bs.cumsum(0) - bs + cols, nd.full([1, 1], N, dtype=nd.int64))
    pad_row = nd.full([1] + list(data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    src = nd.cat([data, pad_row], 0)
    padded = src.index_select(0, index.reshape(-1).to(data.device))
    padded = padded.reshape([T_out, B] + list(data.shape[1:]))
    lengths_t = (bs > cols).sum(0)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(1, sequence.unsorted_indices)
        lengths_t = lengths_t.index_select(0, sequence.unsorted_indices.cpu())
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, lengths_t


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Pads a list of ``(L_i, *)`` tensors to one ``(L_max, B, *)`` tensor (``(B, L_max, *)`` if batch_first).

    Args:
        sequences: Tensors with equal trailing dims.
        batch_first: Batch-major output.
        padding_value: Value of the padded positions.
        padding_side: ``'right'`` or ``'left'``.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, nd.Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise ValueError("[pad_sequence] received an empty list of sequences")
    rest = list(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if list(s.shape[1:]) != rest:
            raise ValueError(f"[pad_sequence] expected every sequence to have trailing shape {tuple(rest)}, got "
                             f"{tuple(s.shape)} at index {i}")
    L = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        n = L - s.shape[0]
        if n == 0:
            padded.append(s)
            continue
        pad = nd.full([n] + rest, padding_value, dtype=s.dtype, device=s.device)
        padded.append(nd.cat([s, pad] if padding_side == "right" else [pad, s], 0))
    return nd.stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """Splits a padded batch back into a list of variable-length tensors (inverse of pad_sequence)."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :int(n)] for i, n in enumerate(_lengths_list(lengths))]


def pack_sequence(sequences, enforce_sorted=True):
    """Packs a list of ``(L_i, *)`` tensors (``pad_sequence`` then ``pack_padded_sequence``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """Unpacks a :class:`PackedSequence` into a list of variable-length tensors."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
