#!/usr/bin/env python3
"""Build every package's wheel, then install each one ALONE (plus only what it declares) in a
fresh venv and run its smoke test. Proves e.g. that ndcore works with no other nd package.

    python3 tools/check_wheels.py [--keep] [--only ndcore,ndgrad]

Wheels go to wheelhouse/; internal dependencies are installed from there with --no-index-style
`--find-links` so pip never resolves an nd package by name from the index. Prints each wheel's
size (ndcore's target is < 10 MB).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / "wheelhouse"
BUILD_PY = ROOT / ".venv" / "bin" / "python"

# package -> (internal deps, external deps, smoke test)
PACKAGES = {
    "ndcore": ([], ["numpy", "scipy-openblas32"],
               "import ndcore as nd; x = nd.arange(6.).reshape(2, 3); assert (x @ x.T).sum().item() == 83.0;"
               "assert abs(nd.linalg.det(nd.eye(3)).item() - 1.0) < 1e-6; import sys; assert 'ndgrad' not in sys.modules"),
    "ndgrad": (["ndcore"], ["numpy", "scipy-openblas32"],
               "import ndcore as nd, ndgrad; x = nd.ones(1, requires_grad=True);"
               "assert ndgrad.grad(x ** 2 + x * 5 + 4, x)[0].item() == 7.0"),
    "ndnn": (["ndcore", "ndgrad"], ["numpy", "scipy-openblas32"],
             "import ndcore as nd, ndnn, ndnn.serialization, io; m = ndnn.Sequential(ndnn.Linear(3, 2), ndnn.ReLU());"
             "y = m(nd.ones(4, 3)); y.sum().backward(); assert m[0].weight.grad.shape == (2, 3);"
             "f = io.BytesIO(); ndnn.serialization.save(m.state_dict(), f); f.seek(0);"
             "assert set(ndnn.serialization.load(f)) == {'0.weight', '0.bias'}"),
    "ndoptim": (["ndcore", "ndgrad"], ["numpy", "scipy-openblas32"],
                "import ndcore as nd, ndoptim; w = nd.tensor([1.0, -2.0], requires_grad=True);"
                "opt = ndoptim.Adam([w], lr=0.1); (w * w).sum().backward(); opt.step();"
                "assert abs(w[0].item() - 0.9) < 1e-6 and abs(w[1].item() + 1.9) < 1e-6"),
    "nddata": (["ndcore"], ["numpy", "scipy-openblas32"],
               "import ndcore as nd, nddata, sys; ds = nddata.TensorDataset(nd.arange(10.), nd.arange(10));"
               "b = [y.tolist() for _, y in nddata.DataLoader(ds, batch_size=4)]; assert b == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]];"
               "assert 'ndgrad' not in sys.modules"),
    "ndstack": (["ndcore", "ndgrad", "ndnn", "ndoptim", "nddata"], ["numpy", "scipy-openblas32"],
                "import nd, nd.nn as nn; x = nd.ones(1, requires_grad=True); assert nd.autograd.grad(x * 3, x)[0].item() == 3.0;"
                "from nd.utils.data import DataLoader; opt = nd.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)"),
}
SOURCE_DIR = {"ndcore": "ndcore", "ndgrad": "ndgrad", "ndnn": "ndnn", "ndoptim": "ndoptim", "nddata": "nddata",
              "ndstack": "nd"}


def run(*cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def build(name: str) -> Path:
    WHEELHOUSE.mkdir(exist_ok=True)
    for old in WHEELHOUSE.glob(f"{name}-*.whl"):
        old.unlink()
    run(BUILD_PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", WHEELHOUSE,
        ROOT / "packages" / SOURCE_DIR[name])
    (wheel,) = WHEELHOUSE.glob(f"{name}-*.whl")
    return wheel


def smoke(name: str, keep: bool) -> None:
    internal, external, code = PACKAGES[name]
    env_dir = Path(tempfile.mkdtemp(prefix=f"ndwheel-{name}-"))
    try:
        venv.EnvBuilder(with_pip=True).create(env_dir)
        py = env_dir / "bin" / "python"
        wheels = [next(WHEELHOUSE.glob(f"{n}-*.whl")) for n in internal + [name]]
        run(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *external)
        run(py, "-m", "pip", "install", "-q", "--no-deps", *wheels)
        run(py, "-c", code, cwd=tempfile.gettempdir())
        print(f"ok: {name} works installed alone (with {internal or 'no other nd package'})")
    finally:
        if not keep:
            shutil.rmtree(env_dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", action="store_true", help="keep the temporary venvs")
    ap.add_argument("--only", default="", help="comma-separated package names")
    args = ap.parse_args()
    names = [n for n in PACKAGES if not args.only or n in args.only.split(",")]
    for name in names:
        wheel = build(name)
        print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB")
    for name in names:
        smoke(name, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
