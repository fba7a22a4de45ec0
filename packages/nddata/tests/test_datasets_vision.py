"""Vision datasets read back from small fixtures written in each source's real format."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import ndcore
import nddata.transforms as T
from nddata.datasets import (
    CIFAR10, CIFAR100, LSUN, STL10, SVHN, CocoCaptions, CocoDetection, DatasetFolder, FakeData,
    ImageFolder, ImageNet, PhotoTour, UnsafePickleError, find_classes, safe_pickle_load,
)

Image = pytest.importorskip("PIL.Image")
RNG = np.random.RandomState(0)


# --------------------------------------------------------------------------- CIFAR


def write_cifar(root, folder, batches, meta_name, meta_key, label_key, n=4, protocol=2):
    d = os.path.join(root, folder)
    os.makedirs(d, exist_ok=True)
    out = {}
    for name in batches:
        data = RNG.randint(0, 256, (n, 3072)).astype(np.uint8)
        labels = RNG.randint(0, 10, n).tolist()
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump({"batch_label": "batch " + name, label_key: labels, "data": data,
                         "filenames": [f"img{i}.png" for i in range(n)]}, f, protocol=protocol)
        out[name] = (data, labels)
    with open(os.path.join(d, meta_name), "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(10)], "num_vis": 3072}, f, protocol=protocol)
    return out


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_reads_pickled_batches(tmp_path, protocol):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ref = write_cifar(tmp_path, "cifar-10-batches-py", names, "batches.meta", "label_names",
                      "labels", protocol=protocol)
    ds = CIFAR10(str(tmp_path), train=True)
    assert len(ds) == 20 and ds.data.shape == (20, 32, 32, 3) and ds.data.dtype == np.uint8
    flat = np.vstack([ref[n][0] for n in names[:5]])
    np.testing.assert_array_equal(ds.data, flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert ds.targets == sum((ref[n][1] for n in names[:5]), [])
    assert ds.classes[3] == "class3" and ds.class_to_idx["class9"] == 9
    img, y = ds[7]
    assert img.mode == "RGB" and img.size == (32, 32) and y == ds.targets[7]
    np.testing.assert_array_equal(np.asarray(img), ds.data[7])
    t = CIFAR10(str(tmp_path), train=False, transform=T.ToTensor())
    x, _ = t[1]
    np.testing.assert_allclose(x.numpy(), ref["test_batch"][0][1].reshape(3, 32, 32) / 255, atol=1e-7)


def test_cifar100_fine_labels(tmp_path):
    ref = write_cifar(tmp_path, "cifar-100-python", ["train", "test"], "meta", "fine_label_names",
                      "fine_labels")
    ds = CIFAR100(str(tmp_path), train=False)
    assert ds.targets == ref["test"][1] and len(ds.classes) == 10


def test_cifar_missing_and_hostile_pickle(tmp_path):
    with pytest.raises(RuntimeError, match="Dataset not found or incomplete"):
        CIFAR10(str(tmp_path))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    blob = pickle.dumps({"data": Evil()}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing to load global (posix|os)\.system"):
        safe_pickle_load(blob)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_pickle_load(pickle.dumps({"x": eval}))
    # Plain data round-trips, including NumPy arrays and py2-style bytes.
    arr = RNG.rand(3, 2)
    back = safe_pickle_load(pickle.dumps({"a": arr, "b": [b"\x00\xff", "s", 3, 2.5]}, protocol=2))
    np.testing.assert_array_equal(back["a"], arr)
    assert back["b"] == [b"\x00\xff", "s", 3, 2.5]


# --------------------------------------------------------------------------- SVHN, STL10


def test_svhn_mat(tmp_path):
    sio = pytest.importorskip("scipy.io")
    X = RNG.randint(0, 256, (32, 32, 3, 5)).astype(np.uint8)
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    sio.savemat(str(tmp_path / "test_32x32.mat"), {"X": X, "y": y})
    ds = SVHN(str(tmp_path), split="test")
    assert ds.data.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(ds.data, X.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 0, 9])
    img, target = ds[3]
    assert target == 0 and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), X[..., 3])
    with pytest.raises(ValueError, match="Unknown value 'val' for argument split"):
        SVHN(str(tmp_path), split="val")
    with pytest.raises(RuntimeError, match="train_32x32.mat"):
        SVHN(str(tmp_path))


def test_stl10_binary(tmp_path):
    d = tmp_path / "stl10_binary"
    d.mkdir()
    imgs = RNG.randint(0, 256, (4, 3, 96, 96)).astype(np.uint8)
    # The files store each channel column-major (transposed).
    imgs.transpose(0, 1, 3, 2).tofile(d / "train_X.bin")
    np.array([1, 10, 3, 4], np.uint8).tofile(d / "train_y.bin")
    imgs[:2].transpose(0, 1, 3, 2).tofile(d / "unlabeled_X.bin")
    (d / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    (d / "fold_indices.txt").write_text("3 1\n0 2\n" + "0\n" * 8)
    ds = STL10(str(tmp_path))
    np.testing.assert_array_equal(ds.data, imgs)
    np.testing.assert_array_equal(ds.labels, [0, 9, 2, 3])
    assert ds.classes[9] == "c9"
    img, y = ds[1]
    assert y == 9 and img.size == (96, 96)
    np.testing.assert_array_equal(np.asarray(img), imgs[1].transpose(1, 2, 0))
    f0 = STL10(str(tmp_path), folds=0)
    np.testing.assert_array_equal(f0.labels, [3, 9])
    both = STL10(str(tmp_path), split="train+unlabeled")
    assert len(both) == 6 and both[5][1] == -1
    assert len(STL10(str(tmp_path), split="unlabeled")) == 2
    with pytest.raises(ValueError, match="folds"):
        STL10(str(tmp_path), folds=10)


# --------------------------------------------------------------------------- folders


def make_folder(root, layout):
    paths = {}
    for cls, names in layout.items():
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for name in names:
            p = os.path.join(root, cls, name)
            arr = RNG.randint(0, 256, (5, 6, 3)).astype(np.uint8)
            if name.endswith((".png", ".bmp")):
                Image.fromarray(arr).save(p)
            else:
                with open(p, "w") as f:
                    f.write(name)
            paths[p] = arr
    return paths


def test_image_folder(tmp_path):
    paths = make_folder(tmp_path, {"dog": ["b.png", "a.png", "notes.txt"], "cat": ["z.bmp"]})
    ds = ImageFolder(str(tmp_path))
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert [os.path.basename(p) for p, _ in ds.samples] == ["z.bmp", "a.png", "b.png"]
    assert ds.targets == [0, 1, 1] and ds.imgs is ds.samples
    img, y = ds[1]
    assert img.mode == "RGB" and y == 1
    np.testing.assert_array_equal(np.asarray(img), paths[str(tmp_path / "dog" / "a.png")])
    only_b = ImageFolder(str(tmp_path), is_valid_file=lambda p: p.endswith("b.png"), allow_empty=True)
    assert len(only_b) == 1
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes cat"):
        ImageFolder(str(tmp_path), is_valid_file=lambda p: p.endswith("b.png"))


def test_dataset_folder_and_find_classes(tmp_path):
    make_folder(tmp_path, {"x": ["1.txt", "2.txt"], "y": ["3.txt", "skip.md"]})
    ds = DatasetFolder(str(tmp_path), loader=lambda p: open(p).read(), extensions=(".txt",))
    assert [ds[i] for i in range(3)] == [("1.txt", 0), ("2.txt", 0), ("3.txt", 1)]
    with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
        DatasetFolder(str(tmp_path), loader=open)
    assert find_classes(str(tmp_path)) == (["x", "y"], {"x": 0, "y": 1})
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        find_classes(str(tmp_path / "x"))


def test_imagenet_folders_and_devkit(tmp_path):
    sio = pytest.importorskip("scipy.io")
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    synsets = np.zeros((3,), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"),
                                    ("gloss", "O"), ("num_children", "O")])
    synsets[0] = (1, "n01440764", "tench, Tinca tinca", "a fish", 0)
    synsets[1] = (2, "n01443537", "goldfish, Carassius auratus", "a fish", 0)
    synsets[2] = (3, "n00001740", "entity", "root", 2)
    sio.savemat(str(data / "meta.mat"), {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("2\n1\n2\n")
    make_folder(tmp_path / "train", {"n01440764": ["a.png"], "n01443537": ["b.png", "c.png"]})
    (tmp_path / "val").mkdir()
    for i in range(3):
        Image.fromarray(RNG.randint(0, 256, (4, 4, 3)).astype(np.uint8)).save(
            tmp_path / "val" / f"ILSVRC2012_val_{i + 1:08d}.png")
    tr = ImageNet(str(tmp_path), split="train")
    assert tr.wnids == ["n01440764", "n01443537"]
    assert tr.classes == [("tench", "Tinca tinca"), ("goldfish", "Carassius auratus")]
    assert tr.class_to_idx["Carassius auratus"] == 1 and tr.wnid_to_idx["n01440764"] == 0
    assert tr.targets == [0, 1, 1]
    va = ImageNet(str(tmp_path), split="val")  # flat folder labelled by the ground truth
    assert va.targets == [1, 0, 1]
    with pytest.raises(RuntimeError, match="devkit not found"):
        ImageNet(str(tmp_path / "train"))


# --------------------------------------------------------------------------- COCO, LSUN


def test_coco_detection_and_captions(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(RNG.randint(0, 256, (6, 8, 3)).astype(np.uint8)).save(tmp_path / name)
    ann = {"images": [{"id": 9, "file_name": "b.png"}, {"id": 4, "file_name": "a.png"}],
           "annotations": [{"id": 1, "image_id": 9, "bbox": [0, 0, 2, 2], "category_id": 3,
                            "caption": "a cat"},
                           {"id": 2, "image_id": 9, "bbox": [1, 1, 2, 2], "category_id": 5,
                            "caption": "a small cat"}],
           "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    det = CocoDetection(str(tmp_path), str(tmp_path / "ann.json"))
    assert det.ids == [4, 9] and len(det) == 2
    img, target = det[1]
    assert img.size == (8, 6) and [t["category_id"] for t in target] == [3, 5]
    assert det[0][1] == []
    cap = CocoCaptions(str(tmp_path), str(tmp_path / "ann.json"), target_transform=len)
    assert cap[1][1] == 2
    assert CocoCaptions(str(tmp_path), str(tmp_path / "ann.json"))[1][1] == ["a cat", "a small cat"]
    both = CocoDetection(str(tmp_path), str(tmp_path / "ann.json"),
                         transforms=lambda i, t: (i.size, len(t)))
    assert both[1] == ((8, 6), 2)


def test_lsun_needs_lmdb(tmp_path):
    try:
        import lmdb  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs the 'lmdb' package"):
            LSUN(str(tmp_path), classes=["bedroom_train"])
    with pytest.raises(ValueError, match="Unknown value"):
        LSUN(str(tmp_path), classes="bogus")


# --------------------------------------------------------------------------- PhotoTour, FakeData


def test_phototour(tmp_path, monkeypatch):
    d = tmp_path / "liberty"
    d.mkdir()
    sheets = [RNG.randint(0, 256, (128, 192)).astype(np.uint8) for _ in range(2)]
    for i, s in enumerate(sheets):
        Image.fromarray(s).save(d / f"patches{i:04d}.bmp")
    (d / "info.txt").write_text("".join(f"{k // 2} 0\n" for k in range(12)))
    (d / "m50_100000_100000_0.txt").write_text("0 0 0 1 0 0 0\n2 1 0 7 3 0 0\n")
    monkeypatch.setitem(PhotoTour.lens, "liberty", 10)  # only the first 10 of 12 patches
    ds = PhotoTour(str(tmp_path), "liberty")
    assert tuple(ds.data.shape) == (10, 64, 64) and len(ds) == 10
    # Row-major patches: patch 4 is sheet 0, row 1, column 1; patch 7 is sheet 1, row 0, col 1.
    np.testing.assert_array_equal(ds.data.numpy()[4], sheets[0][64:128, 64:128])
    np.testing.assert_array_equal(ds[7].numpy(), sheets[1][0:64, 64:128])
    np.testing.assert_array_equal(ds.labels.numpy(), np.arange(12) // 2)
    test = PhotoTour(str(tmp_path), "liberty", train=False, transform=T.ToTensor())
    assert len(test) == 2
    p1, p2, m = test[1]
    assert m == 0 and tuple(p1.shape) == (1, 64, 64)
    np.testing.assert_allclose(p2.numpy()[0], ds.data.numpy()[7] / 255, atol=1e-7)
    assert test[0][2] == 1


def test_fakedata_deterministic():
    ds = FakeData(size=5, image_size=(3, 8, 6), num_classes=4, transform=T.ToTensor())
    ndcore.manual_seed(0)
    before = ndcore.rand(3).numpy()
    a, ya = ds[2]
    ndcore.manual_seed(0)
    np.testing.assert_array_equal(ndcore.rand(3).numpy(), before)  # global RNG untouched
    b, yb = ds[2]
    assert tuple(a.shape) == (3, 8, 6) and 0 <= ya < 4 and ya == yb
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(ds[3][0].numpy(), a.numpy())
    c, _ = FakeData(size=5, image_size=(3, 8, 6), random_offset=1, transform=T.ToTensor())[1]
    np.testing.assert_array_equal(c.numpy(), a.numpy())
    with pytest.raises(IndexError):
        ds[5]
