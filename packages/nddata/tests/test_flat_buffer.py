"""FlatBuffer (variable-size samples in one buffer) and memory that stays flat: forked workers
that read a list-of-objects dataset copy its pages, FlatBuffer's stay shared; the main
process's RSS does not grow across epochs."""
import gc
import os

import numpy as np
import pytest

import ndcore
from nddata import BatchSampler, DataLoader, Dataset, FlatBuffer, TensorDataset


def test_bytes_and_str_roundtrip():
    items = [b"", b"a", b"hello" * 50, bytes(range(256))]
    fb = FlatBuffer.from_list(items)
    assert len(fb) == 4 and [fb[i] for i in range(4)] == items and fb[-1] == items[-1]
    assert fb.offsets.dtype == np.int64 and fb.data.dtype == np.uint8 and fb.data.size == sum(map(len, items))
    assert fb.nbytes(2) == 250 and list(fb) == items
    words = ["", "ünïcode", "plain", "日本"]
    fs = FlatBuffer.from_list(words)
    assert [fs[i] for i in range(4)] == words and fs.kind == "str"
    assert len(FlatBuffer.from_list([])) == 0


def test_arrays_keep_dtype_and_shape():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((k, 3)).astype(np.float32) for k in (0, 1, 5)] + [np.zeros((2, 2, 2), np.float32)]
    fb = FlatBuffer.from_list(arrays)
    for a, b in zip(arrays, fb):
        assert b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
    assert not fb[1].flags.writeable  # views of the shared buffer: read-only
    assert np.shares_memory(fb[2], fb.data)
    vec = FlatBuffer.from_list([np.arange(n, dtype=np.int64) for n in (3, 0, 7)])
    assert vec.shapes is None and vec[2].tolist() == list(range(7))
    tens = FlatBuffer.from_list([ndcore.arange(4, dtype=ndcore.int32), ndcore.arange(2, dtype=ndcore.int32)])
    assert tens[0].tolist() == [0, 1, 2, 3] and tens.dtype == np.int32


def test_errors():
    with pytest.raises(TypeError, match="every item must be bytes, item 1 is str"):
        FlatBuffer.from_list([b"a", "b"])
    with pytest.raises(TypeError, match="every array must have dtype float32, item 1 has float64"):
        FlatBuffer.from_list([np.zeros(2, np.float32), np.zeros(2)])
    with pytest.raises(TypeError, match="object arrays"):
        FlatBuffer.from_list([np.array([{}], dtype=object)])
    with pytest.raises(TypeError, match="items must be bytes, str or NumPy arrays, got int"):
        FlatBuffer.from_list([1, 2])
    fb = FlatBuffer.from_list([b"x"])
    with pytest.raises(IndexError, match="index 1 is out of range for 1 items"):
        fb[1]
    with pytest.raises(TypeError, match="indices must be integers"):
        fb[0.5]
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        FlatBuffer(np.zeros(4, np.uint8), np.array([0, 3, 2, 4], dtype=np.int64))


def _private_dirty_kb() -> int:
    with open("/proc/self/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith("Private_Dirty:"))


def _exclusive_pages(addr: int, nbytes: int) -> int:
    """How many pages of [addr, addr + nbytes) this process maps exclusively (copied on write,
    or never shared), from /proc/self/pagemap's bit 56."""
    page = os.sysconf("SC_PAGE_SIZE")
    first, last = addr // page, (addr + nbytes - 1) // page
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read((last - first + 1) * 8), dtype=np.uint64)
    return int(((entries >> np.uint64(56)) & np.uint64(1)).sum())


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class Samples(Dataset):
    """Reads every item like a real dataset; index -1 reports the worker's private memory."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if i == -1:
            buf = getattr(self.items, "data", None)
            return _private_dirty_kb(), None if buf is None else _exclusive_pages(buf.ctypes.data, buf.nbytes)
        return len(self.items[i])


def _worker_growth_kb(items) -> tuple:
    """Growth of the worker's private memory over one pass, and the buffer's pages it holds
    privately at the end (None without a buffer)."""
    n = len(items)
    chunks = [[-1]] + [list(range(k, min(k + 5000, n))) for k in range(0, n, 5000)] + [[-1]]
    dl = DataLoader(Samples(items), batch_sampler=chunks, num_workers=1, collate_fn=lambda b: b)
    out = list(dl)
    assert sum(len(b) for b in out[1:-1]) == n
    (total0, _), (total1, copied) = out[0][0], out[-1][0]
    return total1 - total0, copied


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc smaps and pagemap")
def test_forked_worker_memory_list_vs_flat_buffer():
    n, width = 200_000, 96
    # The flat case runs first and is built without per-item objects: memory freed by a big
    # list stays in the allocator's arenas, and a forked worker's own small allocations would
    # then land on (and copy) those inherited pages, whatever the dataset.
    rows = np.zeros((n, width), dtype=np.uint8)
    rows[:, 0] = np.arange(n) % 251
    flat = FlatBuffer(rows.reshape(-1), np.arange(n + 1, dtype=np.int64) * width)
    assert flat[7][0] == 7 and len(flat[7]) == width
    flat_growth, flat_private = _worker_growth_kb(flat)
    items = [bytes([i % 251]) + bytes(width - 1) for i in range(n)]  # ~26 MB of small objects
    assert items[7] == flat[7]
    list_growth, _ = _worker_growth_kb(items)
    # Touching each object's refcount copies its page into the worker: about the list's size.
    # The flat buffer's pages stay shared; what the worker's own allocations dirty (arenas
    # inherited from this busy test process) is the same for both.
    assert flat_private == 0, flat_private
    assert list_growth - flat_growth > 15_000, (flat_growth, list_growth)
    assert flat_growth * 3 < list_growth, (flat_growth, list_growth)


def test_main_process_memory_flat_across_epochs():
    x = ndcore.from_numpy(np.random.default_rng(0).integers(0, 255, (6_000, 28, 28), dtype=np.uint8))
    y = ndcore.arange(6_000)

    class Norm(TensorDataset):
        def __getitem__(self, i):
            a, b = super().__getitem__(i)
            return (a.float() / 255 - 0.1307) / 0.3081, b

    dl = DataLoader(Norm(x, y), batch_size=64, shuffle=True, num_workers=2, persistent_workers=True)

    def epoch():
        total = 0
        for xb, yb in dl:
            total += int(yb.shape[0])
        assert total == 6_000

    epoch()
    gc.collect()
    after_one = _rss_kb()
    for _ in range(4):
        epoch()
    gc.collect()
    after_five = _rss_kb()
    assert after_five <= after_one * 1.05, (after_one, after_five)
