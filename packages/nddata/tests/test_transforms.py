"""Conversions and geometric transforms vs NumPy/PIL references (and torch where it has the op)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import ndcore
import nddata.transforms as T
import nddata.transforms.functional as F

Image = pytest.importorskip("PIL.Image")

RNG = np.random.RandomState(0)
HWC = RNG.randint(0, 256, (13, 17, 3)).astype(np.uint8)
CHW_F = RNG.rand(3, 13, 17).astype(np.float32)


def nd(a):
    return ndcore.from_numpy(np.ascontiguousarray(a))


@pytest.fixture(params=["native", "fallback"])
def kernel_path(request, monkeypatch):
    """Run a test through ndcore's interpolation kernels and through the composed fallback."""
    from nddata.transforms import _tensor
    ops = ("grid_sampler_2d", "upsample_bilinear2d", "upsample_bicubic2d", "constant_pad_nd",
           "reflection_pad2d", "replication_pad2d")
    if request.param == "native":
        if not all(_tensor._native(op) for op in ops):
            pytest.skip("ndcore's upsample/grid_sampler kernels are not implemented yet")
    else:
        monkeypatch.setattr(_tensor, "_NATIVE", dict.fromkeys(ops, False))
    return request.param


# --------------------------------------------------------------------------- conversions


def test_to_tensor_pil_and_ndarray():
    for pic in (Image.fromarray(HWC), HWC):
        t = T.ToTensor()(pic)
        assert t.dtype == ndcore.float32 and tuple(t.shape) == (3, 13, 17)
        np.testing.assert_allclose(t.numpy(), HWC.transpose(2, 0, 1) / 255, rtol=0, atol=1e-7)
    g = T.ToTensor()(HWC[..., 0])
    assert tuple(g.shape) == (1, 13, 17)
    # Non-uint8 arrays keep their values; PIL 'I'/'F'/'1' modes follow torchvision.
    f = RNG.rand(4, 5, 2)
    np.testing.assert_array_equal(T.ToTensor()(f).numpy(), f.transpose(2, 0, 1))
    i32 = Image.fromarray(np.arange(20, dtype=np.int32).reshape(4, 5))
    ti = T.ToTensor()(i32)
    assert ti.dtype == ndcore.int32 and ti.numpy()[0, 3, 4] == 19
    bw = Image.fromarray(HWC[..., 0] > 128)
    np.testing.assert_array_equal(T.ToTensor()(bw).numpy()[0], (HWC[..., 0] > 128).astype(np.float32))
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()(nd(HWC))
    with pytest.raises(ValueError, match="2/3 dimensional"):
        T.ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))


def test_pil_to_tensor_and_back():
    t = T.PILToTensor()(Image.fromarray(HWC))
    assert t.dtype == ndcore.uint8
    np.testing.assert_array_equal(t.numpy(), HWC.transpose(2, 0, 1))
    np.testing.assert_array_equal(np.asarray(T.ToPILImage()(t)), HWC)
    img = T.ToPILImage()(nd(CHW_F))  # float: x * 255 truncated to uint8
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), (CHW_F * 255).astype(np.uint8).transpose(1, 2, 0))
    g = T.ToPILImage()(nd(CHW_F[:1]))
    assert g.mode == "L"
    f = T.ToPILImage(mode="F")(nd(CHW_F[:1]))
    assert f.mode == "F"
    np.testing.assert_array_equal(np.asarray(f), CHW_F[0])
    assert T.ToPILImage()(HWC).mode == "RGB"
    assert T.ToPILImage(mode="HSV")(HWC).mode == "HSV"
    rgba = T.ToPILImage()(RNG.randint(0, 256, (4, 5, 4)).astype(np.uint8))
    assert rgba.mode == "RGBA"


def test_normalize_formula_and_errors():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = T.Normalize(mean, std)(nd(CHW_F))
    ref = (CHW_F - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)
    batch = nd(np.stack([CHW_F, CHW_F * 0.5]))
    np.testing.assert_allclose(F.normalize(batch, mean, std).numpy()[1],
                               (CHW_F * 0.5 - np.array(mean, np.float32)[:, None, None])
                               / np.array(std, np.float32)[:, None, None], rtol=1e-6, atol=1e-6)
    x = nd(CHW_F.copy())
    y = T.Normalize(mean, std, inplace=True)(x)
    assert y is x
    np.testing.assert_allclose(x.numpy(), ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="std evaluated to zero"):
        F.normalize(nd(CHW_F), mean, (1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="float tensor"):
        F.normalize(nd(HWC.transpose(2, 0, 1)), mean, std)


def test_compose_lambda_and_repr():
    tf = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2), T.Normalize((1.0,), (2.0,))])
    out = tf(HWC[..., 0])
    np.testing.assert_allclose(out.numpy()[0], (HWC[..., 0] / 255 * 2 - 1) / 2, atol=1e-6)
    assert "Normalize(mean=(1.0,), std=(2.0,)" in repr(tf)
    with pytest.raises(TypeError, match="lambd should be callable"):
        T.Lambda(3)


@pytest.mark.parametrize("src,dst", [(ndcore.uint8, ndcore.float32), (ndcore.float32, ndcore.uint8),
                                     (ndcore.uint8, ndcore.int32), (ndcore.int32, ndcore.uint8)])
def test_convert_image_dtype(src, dst):
    if src == ndcore.uint8:
        x = nd(HWC.transpose(2, 0, 1))
        xn = HWC.transpose(2, 0, 1).astype(np.int64)
    elif src == ndcore.int32:
        xn = RNG.randint(0, 2**31 - 1, (3, 4, 5)).astype(np.int64)
        x = nd(xn.astype(np.int32))
    else:
        x, xn = nd(CHW_F), CHW_F
    out = T.ConvertImageDtype(dst)(x).numpy()
    if dst == ndcore.float32:
        np.testing.assert_allclose(out, xn / 255, atol=1e-7)
    elif src == ndcore.float32:
        np.testing.assert_array_equal(out, (xn * (255 + 1 - 1e-3)).astype(np.uint8))
    elif dst == ndcore.int32:
        np.testing.assert_array_equal(out, xn * 2**23)
    else:
        np.testing.assert_array_equal(out, xn // 2**23)
    with pytest.raises(RuntimeError, match="cannot be performed safely"):
        F.convert_image_dtype(nd(CHW_F), ndcore.int64)


# --------------------------------------------------------------------------- geometry


def test_flips_vs_numpy():
    x = nd(CHW_F)
    np.testing.assert_array_equal(F.hflip(x).numpy(), CHW_F[..., ::-1])
    np.testing.assert_array_equal(F.vflip(x).numpy(), CHW_F[:, ::-1])
    np.testing.assert_array_equal(np.asarray(F.hflip(Image.fromarray(HWC))), HWC[:, ::-1])
    np.testing.assert_array_equal(np.asarray(F.vflip(Image.fromarray(HWC))), HWC[::-1])
    ndcore.manual_seed(0)
    flips = [bool(np.array_equal(T.RandomHorizontalFlip()(x).numpy(), CHW_F)) for _ in range(200)]
    assert 70 < sum(flips) < 130
    assert T.RandomVerticalFlip(p=1.0)(x).numpy()[0, 0, 0] == CHW_F[0, -1, 0]
    assert T.RandomHorizontalFlip(p=0.0)(x) is x


def test_crops_vs_slicing(kernel_path):
    x, pil = nd(CHW_F), Image.fromarray(HWC)
    np.testing.assert_array_equal(F.crop(x, 2, 3, 5, 7).numpy(), CHW_F[:, 2:7, 3:10])
    np.testing.assert_array_equal(np.asarray(F.crop(pil, 2, 3, 5, 7)), HWC[2:7, 3:10])
    # Out of bounds: zero filled, like PIL.
    out = F.crop(x, -2, 14, 5, 6).numpy()
    ref = np.zeros((3, 5, 6), np.float32)
    ref[:, 2:, :3] = CHW_F[:, :3, 14:]
    np.testing.assert_array_equal(out, ref)
    pil_out = np.asarray(F.crop(pil, -2, 14, 5, 6))
    np.testing.assert_array_equal(pil_out, np.pad(HWC[:3, 14:], ((2, 0), (0, 3), (0, 0))))
    # Centre crop rounds like torchvision: top = round((13 - 4) / 2) = 4 (banker's: 4.5 -> 4).
    np.testing.assert_array_equal(T.CenterCrop((4, 6))(x).numpy(), CHW_F[:, 4:8, 6:12])
    np.testing.assert_array_equal(np.asarray(T.CenterCrop(5)(pil)), HWC[4:9, 6:11])
    big = T.CenterCrop((16, 18))(x).numpy()  # larger than the image: zero padded around it
    assert big.shape == (3, 16, 18)
    np.testing.assert_array_equal(big[:, 1:14, 0:17], CHW_F)
    np.testing.assert_array_equal(big[:, 0], 0)


def test_random_crop_positions_and_padding():
    x = nd(CHW_F)
    ndcore.manual_seed(3)
    seen = set()
    for _ in range(50):
        out = T.RandomCrop((10, 15))(x).numpy()
        hits = [(i, j) for i in range(4) for j in range(3)
                if np.array_equal(CHW_F[:, i:i + 10, j:j + 15], out)]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) > 6
    out = T.RandomCrop(13 + 4, padding=2, fill=7)(nd(HWC.transpose(2, 0, 1)))
    assert tuple(out.shape) == (3, 17, 17)
    # pad_if_needed pads both sides by the shortfall (torchvision): 13x17 -> 27x23, then crops.
    padded = T.RandomCrop((20, 20), pad_if_needed=True, padding_mode="edge")(x).numpy()
    full = np.pad(CHW_F, ((0, 0), (7, 7), (3, 3)), mode="edge")
    assert any(np.array_equal(full[:, i:i + 20, j:j + 20], padded) for i in range(8) for j in range(4))
    with pytest.raises(ValueError, match=r"Required crop size \(20, 20\) is larger"):
        T.RandomCrop(20)(x)
    # Same seed -> same crop (DataLoader workers rely on this).
    ndcore.manual_seed(11)
    a = T.RandomCrop(8)(x).numpy()
    ndcore.manual_seed(11)
    np.testing.assert_array_equal(T.RandomCrop(8)(x).numpy(), a)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_vs_numpy(mode, kernel_path):
    x = nd(CHW_F)
    kw = {"constant_values": 0.5} if mode == "constant" else {}
    ref = np.pad(CHW_F, ((0, 0), (2, 4), (1, 3)), mode=mode, **kw)
    np.testing.assert_array_equal(F.pad(x, [1, 2, 3, 4], fill=0.5, padding_mode=mode).numpy(), ref)
    pil_ref = np.pad(HWC, ((2, 4), (1, 3), (0, 0)), mode=mode, **({"constant_values": 9} if kw else {}))
    out = np.asarray(T.Pad([1, 2, 3, 4], fill=9, padding_mode=mode)(Image.fromarray(HWC)))
    np.testing.assert_array_equal(out, pil_ref)
    batch = nd(np.stack([CHW_F, CHW_F + 1]))
    np.testing.assert_array_equal(F.pad(batch, 3, padding_mode=mode).numpy()[1],
                                  np.pad(CHW_F + 1, ((0, 0), (3, 3), (3, 3)), mode=mode))


def test_pad_fill_per_channel_and_negative(kernel_path):
    out = F.pad(nd(CHW_F), [1, 0], fill=(1.0, 2.0, 3.0)).numpy()
    np.testing.assert_array_equal(out[:, :, 0], np.array([1.0, 2.0, 3.0])[:, None].repeat(13, 1))
    np.testing.assert_array_equal(F.pad(nd(CHW_F), [-1, -2, 0, -3]).numpy(), CHW_F[:, 2:10, 1:])
    with pytest.raises(ValueError, match="Padding must be an int or a 1, 2, or 4"):
        T.Pad([1, 2, 3])


def test_resize_pil_vs_pil():
    pil = Image.fromarray(HWC)
    for interp, pil_interp in ((T.InterpolationMode.BILINEAR, Image.Resampling.BILINEAR),
                               (T.InterpolationMode.BICUBIC, Image.Resampling.BICUBIC),
                               (T.InterpolationMode.NEAREST, Image.Resampling.NEAREST)):
        out = T.Resize((7, 30), interpolation=interp)(pil)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(pil.resize((30, 7), pil_interp)))
    # An int matches the smaller edge (13 -> 26, 17 -> int(26 * 17 / 13) = 34).
    assert T.Resize(26)(pil).size == (34, 26)
    assert T.Resize(26, max_size=30)(pil).size == (30, int(30 * 26 / 34))
    with pytest.raises(ValueError, match="max_size should only be passed"):
        T.Resize((5, 5), max_size=30)(pil)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "nearest-exact"])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_tensor_vs_torch(mode, antialias, kernel_path):
    torch = pytest.importorskip("torch")
    x = RNG.rand(2, 3, 19, 23).astype(np.float32)
    for size in ((7, 11), (40, 31), (19, 9)):
        out = F.resize(nd(x), list(size), T.InterpolationMode(mode), antialias=antialias).numpy()
        kw = {"antialias": antialias, "align_corners": False} if not mode.startswith("nearest") else {}
        ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode=mode, **kw)
        np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-5)


def test_resize_tensor_uint8_and_closed_form(kernel_path):
    u = HWC.transpose(2, 0, 1).copy()
    out = F.resize(nd(u), [26, 34], antialias=False).numpy()
    assert out.dtype == np.uint8
    # 2x bilinear upsampling: output pixel 2k+1 sits 3/4 of the way from k to k+1.
    uf = u.astype(np.float64)
    np.testing.assert_array_equal(out[:, 1:-1:2, 0], np.round(0.75 * uf[:, :-1, 0] + 0.25 * uf[:, 1:, 0]))
    same = nd(u)
    assert F.resize(same, [13, 17]) is same


def test_resized_crop_and_random_resized_crop():
    x = nd(CHW_F)
    np.testing.assert_allclose(F.resized_crop(x, 2, 3, 6, 8, [6, 8]).numpy(), CHW_F[:, 2:8, 3:11])
    ndcore.manual_seed(0)
    for _ in range(20):
        i, j, h, w = T.RandomResizedCrop.get_params(x, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= i <= 13 - h and 0 <= j <= 17 - w and h > 0 and w > 0
        assert 3 / 4 - 0.2 <= w / h <= 4 / 3 + 0.2
    out = T.RandomResizedCrop(9)(x)
    assert tuple(out.shape) == (3, 9, 9)
    assert T.RandomResizedCrop((9, 5))(Image.fromarray(HWC)).size == (5, 9)
    # No valid box for an impossible ratio: central fallback with the ratio clamped.
    assert T.RandomResizedCrop.get_params(x, (1.0, 1.0), (10.0, 10.0)) == (5, 0, 2, 17)


def _torch_rotate(torch, img, angle, mode, expand, fill):
    """torchvision's tensor rotate written with torch ops (affine grid + grid_sample + fill mask)."""
    c, h, w = img.shape
    m = F._inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
    ow, oh = F._expanded_size(m, w, h) if expand else (w, h)
    theta = torch.tensor(m, dtype=torch.float32).view(1, 2, 3)
    xs = torch.linspace(-ow * 0.5 + 0.5, ow * 0.5 - 0.5, ow)
    ys = torch.linspace(-oh * 0.5 + 0.5, oh * 0.5 - 0.5, oh)
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None], torch.ones(oh, ow)), -1)
    grid = base.view(1, oh * ow, 3).bmm(theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h]))
    x = torch.cat([img[None], torch.ones(1, 1, h, w)], 1)
    out = torch.nn.functional.grid_sample(x, grid.view(1, oh, ow, 2), mode=mode,
                                          padding_mode="zeros", align_corners=False)
    mask, out = out[:, -1:], out[:, :-1]
    fill_img = torch.tensor(fill).view(1, -1, 1, 1).expand_as(out)
    if mode == "nearest":
        out = torch.where(mask.expand_as(out) < 0.5, fill_img, out)
    else:
        out = out * mask + (1.0 - mask) * fill_img
    return out[0]


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("angle,expand", [(30.0, False), (-73.0, True), (90.0, False)])
def test_rotate_tensor_vs_torch_grid_sample(mode, angle, expand, kernel_path):
    torch = pytest.importorskip("torch")
    fill = [0.25, 0.5, 1.0]
    out = F.rotate(nd(CHW_F), angle, T.InterpolationMode(mode), expand=expand, fill=fill).numpy()
    ref = _torch_rotate(torch, torch.from_numpy(CHW_F), angle, mode, expand, fill).numpy()
    assert out.shape == ref.shape
    if mode == "nearest":  # a coordinate within float eps of a .5 tie may round either way
        assert (np.abs(out - ref) > 1e-6).mean() < 0.01
    else:
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_rotate_closed_forms(kernel_path):
    x = nd(CHW_F[:, :13, :13].copy())
    np.testing.assert_array_equal(F.rotate(x, 90.0).numpy(), np.rot90(CHW_F[:, :13, :13], 1, (1, 2)))
    np.testing.assert_array_equal(F.rotate(x, 180.0).numpy(), CHW_F[:, :13, :13][:, ::-1, ::-1])
    assert tuple(F.rotate(nd(CHW_F), 90.0, expand=True).shape) == (3, 17, 13)
    pil = Image.fromarray(HWC)
    np.testing.assert_array_equal(np.asarray(F.rotate(pil, 33.0, expand=True, fill=(1, 2, 3))),
                                  np.asarray(pil.rotate(33.0, expand=True, fillcolor=(1, 2, 3))))
    ndcore.manual_seed(0)
    out = T.RandomRotation((90, 90))(x).numpy()  # degenerate range: exactly 90
    np.testing.assert_array_equal(out, np.rot90(CHW_F[:, :13, :13], 1, (1, 2)))
    with pytest.raises(ValueError, match="must be positive"):
        T.RandomRotation(-3)


def test_affine_pil_matches_tensor_translation():
    x = nd(CHW_F)
    out = F.affine(x, 0.0, [2, 3], 1.0, [0.0, 0.0]).numpy()
    ref = np.zeros_like(CHW_F)
    ref[:, 3:, 2:] = CHW_F[:, :-3, :-2]
    np.testing.assert_array_equal(out, ref)
    pil = np.asarray(F.affine(Image.fromarray(HWC), 0.0, [2, 3], 1.0, 0.0))
    ref_pil = np.zeros_like(HWC)
    ref_pil[3:, 2:] = HWC[:-3, :-2]
    np.testing.assert_array_equal(pil, ref_pil)
    ndcore.manual_seed(1)
    assert tuple(T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5)(x).shape) == (3, 13, 17)
    assert math.isclose(F._inverse_affine_matrix([0, 0], 0, [0, 0], 2.0, [0, 0])[0], 0.5)


def test_five_and_ten_crop():
    x = nd(CHW_F)
    tl, tr, bl, br, c = T.FiveCrop(4)(x)
    np.testing.assert_array_equal(br.numpy(), CHW_F[:, -4:, -4:])
    np.testing.assert_array_equal(tr.numpy(), CHW_F[:, :4, -4:])
    ten = T.TenCrop(4)(x)
    assert len(ten) == 10
    np.testing.assert_array_equal(ten[5].numpy(), CHW_F[:, :4, ::-1][:, :, :4])
