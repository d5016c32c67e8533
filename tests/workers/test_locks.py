"""The per-model lock holds across processes and dies with its holder (PostgreSQL advisory lock, SQLite flock)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.workers.factories import wait_for
from workers.locks import ModelLock, is_locked, model_lock

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from workers.locks import ModelLock
lock = ModelLock(sys.argv[1])
assert lock.acquire(block=True)
print("held", flush=True)
time.sleep(600)
"""


def _holder(model_id: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, model_id], cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_exclusive_across_processes_and_released_when_the_holder_dies(settings):
    model_id = f"lock-test-{time.time_ns()}"
    assert not is_locked(model_id)
    holder = _holder(model_id)
    try:
        assert is_locked(model_id)
        assert ModelLock(model_id).acquire(block=False) is False
        holder.send_signal(signal.SIGKILL)  # no clean-up code runs in the holder
        holder.wait(timeout=10)
        wait_for(lambda: not is_locked(model_id), timeout=10, what="the lock to die with its holder")
        with model_lock(model_id) as lock:
            assert lock.held and is_locked(model_id)
        assert not is_locked(model_id)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_locks_of_different_models_are_independent(settings):
    a, b = ModelLock("model-a"), ModelLock("model-b")
    try:
        assert a.acquire() and b.acquire()
        assert is_locked("model-a") and is_locked("model-b")
    finally:
        a.release()
        b.release()
    assert not is_locked("model-a")
