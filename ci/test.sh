#!/usr/bin/env bash
# The test job, runnable locally: set up .venv and run every package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tools/dev.py test "$@"
