"""Worker entry point: `python tools/bench/worker.py --system numpy --workload add_1e7`.

run.py starts one of these per system (with --serve); see benchlib/worker.py for the protocol.
"""

import sys

from benchlib.worker import main

if __name__ == "__main__":
    sys.exit(main())
