"""Colour, blur, erasing and random-composition transforms vs closed forms (torchvision's
definitions: blends with black / mean grey / grayscale, HSV hue rotation) and PIL."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

import ndcore
import nddata.transforms as T
import nddata.transforms.functional as F

Image = pytest.importorskip("PIL.Image")

RNG = np.random.RandomState(1)
U8 = RNG.randint(0, 256, (3, 9, 11)).astype(np.uint8)
FL = RNG.rand(3, 9, 11).astype(np.float32)


def nd(a):
    return ndcore.from_numpy(np.ascontiguousarray(a))


def gray_np(x):
    return 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def test_grayscale_tensor_and_pil():
    out = F.rgb_to_grayscale(nd(FL)).numpy()
    np.testing.assert_allclose(out[0], gray_np(FL), rtol=1e-6, atol=1e-6)
    out8 = F.rgb_to_grayscale(nd(U8), 3).numpy()
    assert out8.shape == (3, 9, 11) and out8.dtype == np.uint8
    ref8 = (0.2989 * U8[0].astype(np.float32) + np.float32(0.587) * U8[1] + np.float32(0.114) * U8[2])
    np.testing.assert_array_equal(out8[2], ref8.astype(np.uint8))  # torchvision truncates
    # PIL: ITU-R 601-2 luma with Pillow's rounding, L = R*299/1000 + G*587/1000 + B*114/1000.
    pil = Image.fromarray(U8.transpose(1, 2, 0))
    g = np.asarray(T.Grayscale()(pil)).astype(np.float64)
    r, gg, b = (U8[k].astype(np.float64) for k in range(3))
    assert np.abs(g - (r * 299 + gg * 587 + b * 114) / 1000).max() <= 0.5 + 1e-9
    g3 = T.Grayscale(num_output_channels=3)(pil)
    assert g3.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(g3)[..., 1], np.asarray(T.Grayscale()(pil)))
    batch = nd(np.stack([FL, FL[::-1].copy()]))
    np.testing.assert_allclose(F.rgb_to_grayscale(batch).numpy()[1, 0], gray_np(FL[::-1]), atol=1e-6)
    with pytest.raises(TypeError, match=r"expected image with 1 or 3 channels"):
        F.rgb_to_grayscale(nd(np.zeros((4, 2, 2), np.float32)))


@pytest.mark.parametrize("factor", [0.0, 0.4, 1.0, 1.7])
def test_brightness_contrast_saturation_closed_forms(factor):
    x = nd(FL)
    np.testing.assert_allclose(F.adjust_brightness(x, factor).numpy(),
                               np.clip(FL * factor, 0, 1), atol=1e-6)
    mean = gray_np(FL).mean()
    np.testing.assert_allclose(F.adjust_contrast(x, factor).numpy(),
                               np.clip(factor * FL + (1 - factor) * mean, 0, 1), atol=1e-6)
    np.testing.assert_allclose(F.adjust_saturation(x, factor).numpy(),
                               np.clip(factor * FL + (1 - factor) * gray_np(FL), 0, 1), atol=1e-6)
    # uint8: same blend, clamped to 255 and truncated.
    b8 = F.adjust_brightness(nd(U8), factor).numpy()
    np.testing.assert_array_equal(b8, np.clip(U8.astype(np.float32) * np.float32(factor), 0, 255)
                                  .astype(np.uint8))


def test_brightness_pil_matches_imageenhance_definition():
    pil = Image.fromarray(U8.transpose(1, 2, 0))
    out = np.asarray(F.adjust_brightness(pil, 0.5)).astype(int)
    # ImageEnhance.Brightness blends with black: round(0.5 * x) up to Pillow's fixed point.
    assert np.abs(out - U8.transpose(1, 2, 0) * 0.5).max() <= 1
    with pytest.raises(ValueError, match="brightness_factor"):
        F.adjust_brightness(nd(FL), -1.0)


@pytest.mark.parametrize("hue", [-0.5, -0.21, 0.0, 0.3])
def test_adjust_hue_vs_colorsys(hue):
    out = F.adjust_hue(nd(FL), hue).numpy()
    ref = np.empty_like(FL)
    for i in range(FL.shape[1]):
        for j in range(FL.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*FL[:, i, j])
            ref[:, i, j] = colorsys.hsv_to_rgb((h + hue) % 1.0, s, v)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # uint8 tensor path and PIL path agree up to HSV quantisation in PIL.
    o8 = F.adjust_hue(nd(U8), hue).numpy().astype(int)
    p8 = np.asarray(F.adjust_hue(Image.fromarray(U8.transpose(1, 2, 0)), hue)).transpose(2, 0, 1)
    assert np.median(np.abs(o8 - p8.astype(int))) <= 3
    with pytest.raises(ValueError, match=r"hue_factor \(0.7\) is not in \[-0.5, 0.5\]"):
        F.adjust_hue(nd(FL), 0.7)


def test_gamma_and_invert():
    np.testing.assert_allclose(F.adjust_gamma(nd(FL), 2.2, 0.9).numpy(),
                               np.clip(0.9 * FL ** 2.2, 0, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(F.invert(nd(U8)).numpy(), 255 - U8)
    pil = Image.fromarray(U8.transpose(1, 2, 0))
    np.testing.assert_array_equal(np.asarray(T.RandomInvert(p=1.0)(pil)), 255 - U8.transpose(1, 2, 0))


def test_color_jitter_ranges_and_reproducibility():
    cj = T.ColorJitter(brightness=0.5, contrast=(0.2, 0.3), saturation=0, hue=0.1)
    assert cj.brightness == [0.5, 1.5] and cj.contrast == [0.2, 0.3]
    assert cj.saturation is None and cj.hue == [-0.1, 0.1]
    ndcore.manual_seed(5)
    a = cj(nd(FL)).numpy()
    ndcore.manual_seed(5)
    b = cj(nd(FL)).numpy()
    np.testing.assert_array_equal(a, b)
    ndcore.manual_seed(5)
    order, bf, cf, sf, hf = T.ColorJitter.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
    assert sorted(order) == [0, 1, 2, 3] and 0.5 <= bf <= 1.5 and 0.2 <= cf <= 0.3 and sf is None
    # Replaying the drawn factors in the drawn order gives the transform's output.
    ref = nd(FL)
    fns = {0: (F.adjust_brightness, bf), 1: (F.adjust_contrast, cf), 3: (F.adjust_hue, hf)}
    for k in order:
        if k in fns:
            ref = fns[k][0](ref, fns[k][1])
    np.testing.assert_array_equal(a, ref.numpy())
    out = cj(Image.fromarray(U8.transpose(1, 2, 0)))
    assert out.size == (11, 9)
    with pytest.raises(ValueError, match="hue values should be between"):
        T.ColorJitter(hue=0.7)


def test_random_grayscale():
    ndcore.manual_seed(0)
    x = nd(FL)
    outs = [T.RandomGrayscale(p=0.5)(x).numpy() for _ in range(100)]
    n_gray = sum(np.array_equal(o[0], o[1]) for o in outs)
    assert 30 < n_gray < 70
    assert all(o.shape == (3, 9, 11) for o in outs)


def _blur_ref(x, k, sigma):
    half = (k - 1) * 0.5
    t = np.linspace(-half, half, k)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    w /= w.sum()
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p)), mode="reflect")
    return sum(w[i] * xp[..., i:i + x.shape[-1]] for i in range(k))


def test_gaussian_blur_vs_separable_reference():
    out = F.gaussian_blur(nd(FL), [5, 3], [1.3, 0.7]).numpy()
    ref = _blur_ref(FL.astype(np.float64), 5, 1.3)
    ref = _blur_ref(ref.transpose(0, 2, 1), 3, 0.7).transpose(0, 2, 1)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    o8 = F.gaussian_blur(nd(U8), 3).numpy()  # default sigma = 0.3 * ((3 - 1) * 0.5 - 1) + 0.8
    r8 = _blur_ref(U8.astype(np.float64), 3, 0.8)
    r8 = _blur_ref(r8.transpose(0, 2, 1), 3, 0.8).transpose(0, 2, 1)
    assert o8.dtype == np.uint8 and np.abs(o8 - np.round(r8)).max() <= 1
    pil = F.gaussian_blur(Image.fromarray(U8.transpose(1, 2, 0)), 3)
    np.testing.assert_array_equal(np.asarray(pil).transpose(2, 0, 1), o8)
    ndcore.manual_seed(0)
    assert tuple(T.GaussianBlur(3, sigma=(0.1, 2.0))(nd(FL)).shape) == (3, 9, 11)
    with pytest.raises(ValueError, match="odd and positive"):
        F.gaussian_blur(nd(FL), 4)


def test_erase_and_random_erasing():
    x = nd(FL)
    out = F.erase(x, 1, 2, 3, 4, 0.5).numpy()
    ref = FL.copy()
    ref[:, 1:4, 2:6] = 0.5
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(x.numpy(), FL)  # not in place
    ndcore.manual_seed(2)
    re = T.RandomErasing(p=1.0, value=(0.1, 0.2, 0.3))
    out = re(nd(FL)).numpy()
    changed = np.argwhere((out != FL).any(0))
    (i0, j0), (i1, j1) = changed.min(0), changed.max(0)
    np.testing.assert_allclose(out[:, i0:i1 + 1, j0:j1 + 1],
                               np.broadcast_to(np.array([0.1, 0.2, 0.3], np.float32)[:, None, None],
                                               (3, i1 - i0 + 1, j1 - j0 + 1)))
    ndcore.manual_seed(2)
    rnd = T.RandomErasing(p=1.0, value="random")(nd(FL)).numpy()
    assert (rnd != FL).any()
    y = nd(FL.copy())
    assert T.RandomErasing(p=1.0, inplace=True)(y) is y
    assert T.RandomErasing(p=0.0)(x) is x
    with pytest.raises(ValueError, match="should be 'random'"):
        T.RandomErasing(value="foo")
    with pytest.raises(TypeError, match="Tensor Image"):
        F.erase(Image.fromarray(U8.transpose(1, 2, 0)), 0, 0, 1, 1, 0)


def test_random_apply_choice_order():
    add1, mul2 = T.Lambda(lambda v: v + 1), T.Lambda(lambda v: v * 2)
    ndcore.manual_seed(0)
    outs = [T.RandomApply([add1, mul2], p=0.5)(1) for _ in range(200)]
    assert set(outs) == {1, 4} and 70 < outs.count(4) < 130
    ndcore.manual_seed(0)
    picks = [T.RandomChoice([add1, mul2], p=[0.9, 0.1])(10) for _ in range(300)]
    assert set(picks) == {11, 20} and picks.count(20) < 60
    ndcore.manual_seed(0)
    orders = {T.RandomOrder([add1, mul2])(1) for _ in range(50)}
    assert orders == {4, 3}  # (1 + 1) * 2 or 1 * 2 + 1
    with pytest.raises(ValueError, match="Length of p"):
        T.RandomChoice([add1], p=[0.5, 0.5])


def test_seeded_pipeline_is_reproducible():
    tf = T.Compose([T.RandomResizedCrop(8), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4),
                    T.RandomRotation(20), T.RandomErasing()])
    ndcore.manual_seed(123)
    a = [tf(nd(FL)).numpy() for _ in range(3)]
    ndcore.manual_seed(123)
    b = [tf(nd(FL)).numpy() for _ in range(3)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], a[1])


def test_batched_tensors_match_per_image():
    batch = RNG.rand(4, 3, 9, 11).astype(np.float32)
    ops = [lambda t: F.rotate(t, 25.0, T.InterpolationMode.BILINEAR, fill=[0.5]),
           lambda t: F.resize(t, [5, 17]), lambda t: F.adjust_hue(t, 0.2),
           lambda t: F.adjust_contrast(t, 0.6), lambda t: F.gaussian_blur(t, 3, 1.0),
           lambda t: F.pad(t, [1, 2], padding_mode="symmetric"), lambda t: F.rgb_to_grayscale(t, 3)]
    for op in ops:
        whole = op(nd(batch)).numpy()
        for k in range(4):
            np.testing.assert_allclose(whole[k], op(nd(batch[k])).numpy(), rtol=1e-6, atol=1e-6)
    # Random ops draw once per call: the whole batch gets the same crop/flip, as in torchvision.
    ndcore.manual_seed(4)
    out = T.RandomCrop(5)(nd(batch)).numpy()
    hits = [(i, j) for i in range(5) for j in range(7)
            if np.array_equal(batch[:, :, i:i + 5, j:j + 5], out)]
    assert len(hits) == 1
