"""MNIST family (IDX files written here in the real format), Digits, and the download helper."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.error

import numpy as np
import pytest

import ndcore
from nddata.datasets import EMNIST, KMNIST, MNIST, Digits, FashionMNIST, _download
from nddata.datasets.mnist import read_idx
import nddata.transforms as T

RNG = np.random.RandomState(7)


def write_idx(path, arr: np.ndarray, gz: bool = False) -> None:
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
            np.float64: 0x0E}[arr.dtype.type]
    payload = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload += arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(payload)


def make_mnist(root, cls: str = "MNIST", n: int = 12, gz: bool = False, names=None, seed: int = 0):
    rng = np.random.RandomState(seed)
    raw = os.path.join(root, cls, "raw")
    os.makedirs(raw, exist_ok=True)
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        imgs = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.randint(0, 10, n).astype(np.uint8)
        iname, lname = names(split) if names else (f"{prefix}-images-idx3-ubyte",
                                                    f"{prefix}-labels-idx1-ubyte")
        sfx = ".gz" if gz else ""
        write_idx(os.path.join(raw, iname + sfx), imgs, gz)
        write_idx(os.path.join(raw, lname + sfx), labels, gz)
        out[split] = (imgs, labels)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx(tmp_path, gz):
    ref = make_mnist(tmp_path, gz=gz)
    for train, split in ((True, "train"), (False, "test")):
        ds = MNIST(str(tmp_path), train=train)
        imgs, labels = ref[split]
        assert ds.data.dtype == ndcore.uint8 and tuple(ds.data.shape) == (12, 28, 28)
        assert ds.targets.dtype == ndcore.int64
        np.testing.assert_array_equal(ds.data.numpy(), imgs)
        np.testing.assert_array_equal(ds.targets.numpy(), labels.astype(np.int64))
        assert len(ds) == 12
        img, target = ds[3]
        assert type(target) is int and target == labels[3]
        assert img.mode == "L" and img.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(img), imgs[3])


def test_mnist_attributes_and_transforms(tmp_path):
    ref = make_mnist(tmp_path)
    tf = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    ds = MNIST(str(tmp_path), transform=tf, target_transform=lambda y: y * 10)
    assert ds.classes[3] == "3 - three" and ds.class_to_idx["9 - nine"] == 9
    x, y = ds[5]
    assert tuple(x.shape) == (1, 28, 28) and x.dtype == ndcore.float32
    expected = (ref["train"][0][5].astype(np.float32) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(x.numpy()[0], expected, rtol=1e-6, atol=1e-6)
    assert y == 10 * int(ref["train"][1][5])
    # The ndarray shortcut gives exactly the PIL path's result.
    via_pil = tf(MNIST(str(tmp_path))[5][0])
    np.testing.assert_array_equal(via_pil.numpy(), x.numpy())
    assert "Number of datapoints: 12" in repr(ds) and "Split: Train" in repr(ds)


def test_mnist_reassigned_data_is_used(tmp_path):
    make_mnist(tmp_path)
    ds = MNIST(str(tmp_path))
    ds.data, ds.targets = ds.data[:4], ds.targets[:4]
    assert len(ds) == 4
    np.testing.assert_array_equal(np.asarray(ds[3][0]), ds.data.numpy()[3])


def test_mnist_variants_and_errors(tmp_path):
    make_mnist(tmp_path, "FashionMNIST")
    make_mnist(tmp_path, "KMNIST")
    assert FashionMNIST(str(tmp_path)).classes[9] == "Ankle boot"
    assert KMNIST(str(tmp_path), train=False).classes[0] == "o"
    with pytest.raises(RuntimeError, match="Dataset not found.*download=True"):
        MNIST(str(tmp_path))
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02")
    with pytest.raises(ValueError, match=r"header says shape \(5,\)"):
        read_idx(str(bad))
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(str(bad))


def test_read_idx_dtypes(tmp_path):
    for arr in (np.arange(-6, 6, dtype=np.int16).reshape(3, 4), np.linspace(0, 1, 5, dtype=np.float64)):
        write_idx(tmp_path / "a", arr)
        out = read_idx(str(tmp_path / "a"))
        assert out.dtype == arr.dtype and out.dtype.isnative
        np.testing.assert_array_equal(out, arr)


def test_emnist_split(tmp_path):
    ref = make_mnist(tmp_path, "EMNIST", gz=True,
                     names=lambda s: (f"emnist-letters-{s}-images-idx3-ubyte",
                                      f"emnist-letters-{s}-labels-idx1-ubyte"))
    ds = EMNIST(str(tmp_path), split="letters", train=False)
    np.testing.assert_array_equal(ds.data.numpy(), ref["test"][0])
    assert ds.classes[:3] == ["N/A", "a", "b"] and len(ds.classes) == 27
    assert len(EMNIST.classes_split_dict["balanced"]) == 47
    assert len(EMNIST.classes_split_dict["byclass"]) == 62
    with pytest.raises(ValueError, match="Unknown value 'foo' for argument split"):
        EMNIST(str(tmp_path), split="foo")


def test_digits_is_an_mnist_drop_in():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    train, test = Digits(train=True), Digits(train=False)
    assert len(train) + len(test) == 1797
    assert train.data.dtype == ndcore.uint8 and tuple(train.data.shape[1:]) == (28, 28)
    assert train.targets.dtype == ndcore.int64
    # Stratified: every class has ~20% of its members in test.
    all_t = load_digits().target
    for c in range(10):
        n_c = int((all_t == c).sum())
        assert int((test.targets.numpy() == c).sum()) == round(0.2 * n_c)
    # Deterministic and disjoint: the union of both splits is the whole set, exactly.
    d8 = Digits(train=True, size=8)
    d8t = Digits(train=False, size=8)
    both = np.concatenate([d8.data.numpy(), d8t.data.numpy()]).reshape(1797, -1)
    ref = np.round(load_digits().images.reshape(1797, -1) * 255 / 16).astype(np.uint8)
    key = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert key(both) == key(ref)
    np.testing.assert_array_equal(Digits(train=True).data.numpy(), train.data.numpy())
    img, y = train[0]
    assert img.mode == "L" and img.size == (28, 28) and type(y) is int


def test_digits_resize_matches_torch():
    pytest.importorskip("sklearn")
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits
    d = Digits(train=True)
    idx = Digits._split(load_digits().target, True, 0.2, 0)
    x = torch.from_numpy(load_digits().images[idx].astype(np.float32) * (255 / 16)).unsqueeze(1)
    ref = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    ref = ref.round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()
    diff = np.abs(d.data.numpy().astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding ties only


# --------------------------------------------------------------------------- download helper


class _FakeResponse(io.BytesIO):
    headers = {"Content-Length": "0"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_md5_and_reports_offline(tmp_path, monkeypatch, capsys):
    payload = b"hello world" * 100
    good = hashlib.md5(payload).hexdigest()
    resp = _FakeResponse(payload)
    resp.headers = {"Content-Length": str(len(payload))}
    monkeypatch.setattr(_download, "urlopen", lambda req, timeout: resp)
    path = _download.download_url("https://example.org/f.bin", str(tmp_path), md5=good)
    assert open(path, "rb").read() == payload
    assert "f.bin" in capsys.readouterr().err  # progress bar on stderr

    monkeypatch.setattr(_download, "urlopen", lambda req, timeout: _FakeResponse(b"corrupt"))
    with pytest.raises(RuntimeError, match="MD5 does not match"):
        _download.download_url("https://example.org/g.bin", str(tmp_path), md5=good)
    assert not os.path.exists(tmp_path / "g.bin")

    def offline(req, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(_download, "urlopen", offline)
    with pytest.raises(RuntimeError) as e:
        MNIST(str(tmp_path / "m"), download=True)
    msg = str(e.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in msg
    assert os.path.join(str(tmp_path / "m"), "MNIST", "raw") in msg and "download=False" in msg


def test_download_extracts_gz_into_raw(tmp_path, monkeypatch):
    ref = {}
    blobs = {}
    rng = np.random.RandomState(1)
    for fname, _ in MNIST.resources:
        arr = (rng.randint(0, 256, (3, 28, 28)) if "images" in fname else rng.randint(0, 10, 3))
        arr = arr.astype(np.uint8)
        write_idx(tmp_path / "tmp.gz", arr, gz=True)
        blobs[fname] = (tmp_path / "tmp.gz").read_bytes()
        ref[fname] = arr
    monkeypatch.setattr(MNIST, "resources", [(f, hashlib.md5(b).hexdigest()) for f, b in blobs.items()])
    monkeypatch.setattr(_download, "urlopen",
                        lambda req, timeout: _FakeResponse(blobs[req.full_url.rsplit("/", 1)[1]]))
    ds = MNIST(str(tmp_path / "root"), train=False, download=True)
    np.testing.assert_array_equal(ds.data.numpy(), ref["t10k-images-idx3-ubyte.gz"])
    assert os.path.isfile(tmp_path / "root" / "MNIST" / "raw" / "t10k-images-idx3-ubyte")


def test_emnist_download_unpacks_nist_zip(tmp_path, monkeypatch):
    import zipfile
    imgs = RNG.randint(0, 256, (2, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / "i.gz", imgs, gz=True)
    write_idx(tmp_path / "l.gz", np.array([3, 5], np.uint8), gz=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(tmp_path / "i.gz", "gzip/emnist-digits-test-images-idx3-ubyte.gz")
        z.write(tmp_path / "l.gz", "gzip/emnist-digits-test-labels-idx1-ubyte.gz")
    blob = buf.getvalue()
    monkeypatch.setattr(EMNIST, "md5", hashlib.md5(blob).hexdigest())
    monkeypatch.setattr(_download, "urlopen", lambda req, timeout: _FakeResponse(blob))
    ds = EMNIST(str(tmp_path / "r"), split="digits", train=False, download=True)
    np.testing.assert_array_equal(ds.data.numpy(), imgs)
    assert ds.targets.tolist() == [3, 5]


def test_extract_refuses_path_traversal(tmp_path):
    import tarfile
    (tmp_path / "evil.txt").write_text("x")
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "evil.txt", arcname="../escaped.txt")
    with pytest.raises(RuntimeError, match="refusing unsafe member '../escaped.txt'"):
        _download.extract_archive(str(tmp_path / "a.tar.gz"), str(tmp_path / "out"))
    assert not (tmp_path / "escaped.txt").exists()
