"""make_grid / save_image vs a NumPy reconstruction of torchvision's layout; PNG read back."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest

import ndcore
from nddata.utils import make_grid, save_image

RNG = np.random.RandomState(0)


def grid_ref(x: np.ndarray, nrow=8, padding=2, pad_value=0.0) -> np.ndarray:
    """torchvision's loop: image k at row k // nrow, column k % nrow."""
    b, c, h, w = x.shape
    xm = min(nrow, b)
    ym = int(math.ceil(b / xm))
    g = np.full((c, ym * (h + padding) + padding, xm * (w + padding) + padding), pad_value, x.dtype)
    for k in range(b):
        y0, x0 = (k // xm) * (h + padding) + padding, (k % xm) * (w + padding) + padding
        g[:, y0:y0 + h, x0:x0 + w] = x[k]
    return g


@pytest.mark.parametrize("b,nrow,padding", [(5, 2, 2), (8, 8, 0), (7, 3, 1), (2, 8, 4)])
def test_make_grid_layout(b, nrow, padding):
    x = RNG.rand(b, 3, 4, 6).astype(np.float32)
    out = make_grid(ndcore.from_numpy(x), nrow=nrow, padding=padding, pad_value=0.25).numpy()
    np.testing.assert_array_equal(out, grid_ref(x, nrow, padding, 0.25))


def test_make_grid_channels_lists_and_single():
    x = RNG.rand(3, 1, 4, 4).astype(np.float32)
    out = make_grid(ndcore.from_numpy(x), nrow=2).numpy()
    np.testing.assert_array_equal(out, grid_ref(np.repeat(x, 3, 1), 2))
    imgs = [ndcore.from_numpy(a) for a in RNG.rand(3, 3, 5, 5).astype(np.float32)]
    np.testing.assert_array_equal(make_grid(imgs, nrow=3).numpy(),
                                  grid_ref(np.stack([i.numpy() for i in imgs]), 3))
    one = RNG.rand(1, 6, 7).astype(np.float32)
    np.testing.assert_array_equal(make_grid(ndcore.from_numpy(one)).numpy(), np.repeat(one, 3, 0))
    with pytest.raises(ValueError, match=r"expected \(B, C, H, W\)"):
        make_grid(ndcore.zeros((1, 1, 1, 2, 2)))


def test_make_grid_normalize():
    x = (RNG.rand(4, 3, 3, 3) * 10 - 5).astype(np.float32)
    t = ndcore.from_numpy(x)
    out = make_grid(t, nrow=2, padding=0, normalize=True).numpy()
    np.testing.assert_allclose(out, grid_ref((x - x.min()) / (x.max() - x.min()), 2, 0), atol=1e-6)
    out = make_grid(t, nrow=2, padding=0, normalize=True, value_range=(-1.0, 1.0)).numpy()
    np.testing.assert_allclose(out, grid_ref((np.clip(x, -1, 1) + 1) / 2, 2, 0), atol=1e-6)
    each = make_grid(t, nrow=2, padding=0, normalize=True, scale_each=True).numpy()
    mn = x.reshape(4, -1).min(1)[:, None, None, None]
    mx = x.reshape(4, -1).max(1)[:, None, None, None]
    np.testing.assert_allclose(each, grid_ref((x - mn) / (mx - mn), 2, 0), atol=1e-6)
    np.testing.assert_array_equal(t.numpy(), x)  # input untouched


def test_save_image_png_roundtrip(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    x = RNG.rand(6, 3, 5, 4).astype(np.float32)
    x[0, 0, 0, 0] = 1.7  # clamped
    path = tmp_path / "grid.png"
    save_image(ndcore.from_numpy(x), str(path), nrow=3, padding=1)
    got = np.asarray(Image.open(path))
    ref = np.clip(grid_ref(x, 3, 1) * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(got, ref)
    buf = io.BytesIO()
    save_image(ndcore.from_numpy(x[0]), buf, format="png")
    buf.seek(0)
    np.testing.assert_array_equal(np.asarray(Image.open(buf)),
                                  np.clip(x[0] * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0))
