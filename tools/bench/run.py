"""Benchmark nd against NumPy and PyTorch: `python tools/bench/run.py [--quick] ...`.

See tools/bench/README.md for the method; `--help` for the options.
"""

import sys

from benchlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
