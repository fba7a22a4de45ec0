"""Parent side of the worker protocol: one long-lived subprocess per system.

A worker that crashes or hangs is killed and its request reported as an error; the next request
for that system starts a fresh worker, so one failure never ends the suite.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .systems import OPENBLAS_ENV_UNSET

WORKER = Path(__file__).resolve().parent.parent / "worker.py"


def child_env() -> dict:
    """The parent's environment without the OpenBLAS kernel overrides (see NOTES.md)."""
    env = dict(os.environ)
    for key in OPENBLAS_ENV_UNSET:
        env.pop(key, None)
    return env


def crash_detail(stderr: str) -> str:
    """The useful part of a dead worker's stderr.

    After a fatal signal, faulthandler's first frame ("most recent call first") is where the
    crash happened, which names the workload's setup or lambda; otherwise the last lines.
    """
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("Fatal Python error"):
            frames = [f for f in lines[i + 1:] if f.startswith("File ")]
            return "; ".join([line] + frames[:1])
    return " | ".join(lines[-3:])


class WorkerDied(Exception):
    pass


class Worker:
    """One running worker process and its line-buffered JSON stdout."""

    def __init__(self, system: str, plan, threads, python: str):
        cmd = [python, str(WORKER), "--system", system, "--serve"]
        cmd += ["--plan", json.dumps(asdict(plan))]
        if threads:
            cmd += ["--threads", str(threads)]
        # stderr goes to a file: it is only read to explain a crash, and a pipe could fill up.
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env=child_env(), bufsize=0,
        )
        self.buf = b""

    def read(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise WorkerDied(f"timed out after {timeout_s:.0f} s")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise WorkerDied(self._death())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, name: str) -> None:
        try:
            self.proc.stdin.write(name.encode() + b"\n")
        except BrokenPipeError:
            raise WorkerDied(self._death()) from None

    def _death(self) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its stdout but lingers
            self.proc.kill()
            rc = self.proc.wait()
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
        self.stderr.seek(0)
        detail = crash_detail(self.stderr.read().decode(errors="replace"))
        return f"worker died ({how})" + (f": {detail}" if detail else "")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


class WorkerPool:
    """Runs workloads in per-system subprocesses; implements the runner interface of harness."""

    def __init__(self, plan, threads=None, timeout_s=120.0, python=sys.executable):
        self.plan, self.threads, self.timeout_s, self.python = plan, threads, timeout_s, python
        self.workers: dict[str, Worker] = {}
        self.info: dict[str, dict] = {}
        self.unavailable: dict[str, str] = {}

    def _worker(self, system: str) -> Worker | None:
        if system in self.unavailable:
            return None
        if system not in self.workers:
            worker = Worker(system, self.plan, self.threads, self.python)
            # Importing torch on a cold disk can take a while; allow the full request timeout.
            try:
                hello = worker.read(self.timeout_s)
            except WorkerDied as exc:
                hello = {"ready": False, "error": str(exc)}
            if not hello.get("ready"):
                worker.proc.kill()
                worker.close()
                self.unavailable[system] = hello.get("error", "unknown")
                return None
            self.info[system] = hello["info"]
            self.workers[system] = worker
        return self.workers[system]

    def run(self, system: str, workload: str) -> dict:
        worker = self._worker(system)
        if worker is None:
            return {"workload": workload, "error": f"not available: {self.unavailable[system]}"}
        try:
            worker.send(workload)
            return worker.read(self.timeout_s)
        except WorkerDied as exc:
            self._drop(system)
            return {"workload": workload, "error": str(exc)}

    def _drop(self, system: str) -> None:
        worker = self.workers.pop(system)
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.close()

    def close(self) -> None:
        for system in list(self.workers):
            self.workers.pop(system).close()
