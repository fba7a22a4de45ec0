"""Failures in and around DataLoader workers: each must surface fast as a clear exception and
leave no worker process and no shared-memory segment behind."""
import ctypes
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import ndcore
from nddata import DataLoader, Dataset


@pytest.fixture(autouse=True)
def guard():
    """Fails a test that hangs (instead of hanging the suite), then checks it left nothing behind."""
    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded 30 s: the DataLoader hung")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    gc.collect()
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []
    assert _segments() == []


def _segments(pid=None):
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"ndd_{pid or os.getpid()}_")]


def _children(pid):
    """Live child processes of ``pid``, from /proc (no psutil)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


class Faulty(Dataset):
    """Returns ``i``; at ``bad`` it does ``action``."""

    def __init__(self, n, bad, action):
        self.n, self.bad, self.action = n, bad, action

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            self.action(i)
        return ndcore.full((4,), float(i))


def _raise_value(i):
    raise ValueError(f"bad sample {i}")


def _raise_key(i):
    raise KeyError(i)


def test_worker_exception_is_reraised_with_context():
    dl = DataLoader(Faulty(20, 9, _raise_value), batch_size=4, num_workers=2)
    got = []
    with pytest.raises(ValueError) as info:
        for b in dl:
            got.append(b)
    msg = str(info.value)
    assert "Caught ValueError in DataLoader worker process 0" in msg  # batch [8..11] is task 2: worker 0
    assert "indices [8, 9, 10, 11]" in msg
    assert "Traceback" in msg and "_raise_value" in msg and "bad sample 9" in msg
    assert len(got) == 2  # the batches before the failing one were delivered


def test_key_error_and_unpicklable_exception_types():
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process"):
        list(DataLoader(Faulty(4, 1, _raise_key), batch_size=2, num_workers=1))

    class Local(Exception):
        pass

    def raise_local(i):
        raise Local("local failure")

    with pytest.raises(RuntimeError, match="(?s)Caught Local in DataLoader worker process.*local failure"):
        list(DataLoader(Faulty(4, 1, raise_local), batch_size=2, num_workers=1))


def test_worker_init_fn_failure():
    def init(worker_id):
        raise OSError(f"no device for worker {worker_id}")

    with pytest.raises(OSError, match="no device for worker 0"):
        list(DataLoader(Faulty(4, -1, None), batch_size=2, num_workers=1, worker_init_fn=init))


def _sigkill(i):
    os.kill(os.getpid(), signal.SIGKILL)


def _segfault(i):
    import faulthandler

    faulthandler.disable()  # pytest's handler would print a fatal-error dump for this expected crash
    ctypes.string_at(0)


def _exit3(i):
    os._exit(3)


@pytest.mark.parametrize("action,how", [(_sigkill, "killed by signal SIGKILL"), (_segfault, "killed by signal SIGSEGV"),
                                        (_exit3, "exit code 3")])
def test_dead_worker_is_detected_fast(action, how):
    dl = DataLoader(Faulty(40, 5, action), batch_size=2, num_workers=2)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=f"DataLoader worker 0 \\(pid \\d+\\) .*{how}"):
        for _ in dl:
            pass
    assert time.monotonic() - t0 < 3


def test_timeout():
    def slow(i):
        time.sleep(10)

    dl = DataLoader(Faulty(8, 0, slow), batch_size=2, num_workers=1, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.5 seconds"):
        next(iter(dl))
    assert time.monotonic() - t0 < 3


def test_break_and_training_loop_exception_leave_nothing():
    dl = DataLoader(Faulty(100, -1, None), batch_size=4, num_workers=2)
    for k, _ in enumerate(dl):
        if k == 3:
            break
    gc.collect()
    with pytest.raises(ZeroDivisionError):
        for _ in dl:
            1 / 0
    # the guard fixture checks processes and /dev/shm after the test


def test_del_persistent_loader_leaves_nothing():
    dl = DataLoader(Faulty(30, -1, None), batch_size=4, num_workers=2, persistent_workers=True)
    held = next(iter(dl))
    pids = [w.pid for w in dl._iterator._workers]
    assert all(os.path.exists(f"/proc/{p}") for p in pids)
    del dl
    gc.collect()
    assert held[1].tolist() == [1.0] * 4  # a held batch stays valid


def test_interpreter_exit_leaves_nothing(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        import ndcore
        from nddata import DataLoader, Dataset

        class D(Dataset):
            def __len__(self):
                return 1000
            def __getitem__(self, i):
                return ndcore.full((64,), float(i))

        dl = DataLoader(D(), batch_size=8, num_workers=2, persistent_workers=True)
        it = iter(dl)
        keep = [next(it) for _ in range(3)]
        print(os.getpid(), *[w.pid for w in it._workers], flush=True)
        # exit with batches held, batches in flight and workers running
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    main_pid, *worker_pids = map(int, proc.stdout.split())
    time.sleep(0.2)
    assert all(not os.path.exists(f"/proc/{p}") or _zombie(p) for p in worker_pids)
    assert _segments(main_pid) == []
    assert "leaked" not in proc.stderr


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_killed_main_process_workers_exit_and_clean_up():
    script = textwrap.dedent("""
        import os, time
        import ndcore
        from nddata import DataLoader, Dataset

        class D(Dataset):
            def __len__(self):
                return 1000
            def __getitem__(self, i):
                return ndcore.full((64,), float(i))

        it = iter(DataLoader(D(), batch_size=8, num_workers=2))
        next(it)
        print(*[w.pid for w in it._workers], flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker_pids = list(map(int, proc.stdout.readline().split()))
        assert len(worker_pids) == 2
        proc.kill()
        proc.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(_zombie(p) for p in worker_pids):
            time.sleep(0.1)
        assert all(_zombie(p) for p in worker_pids)  # noticed the parent is gone within ~1 s
        time.sleep(0.2)
        assert _segments(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
