"""Per-model locks that order every update of one model, across processes and hosts.

PostgreSQL: a session-level advisory lock keyed by a hash of the model id, held on a dedicated autocommit
connection for the whole update (no transaction stays open). SQLite (embedded, one host): an exclusive
``flock`` on a file next to the database. Both are released by the operating system or the server when the
holding process dies, so "the lock is free" also means "nobody is working on this model": the reconciler uses
that to tell an orphaned ``running`` request from a live one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from app.core.db import get_engine

POLL_S = 0.2  # seconds between attempts while waiting for a busy lock


class LockUnavailable(Exception):
    """The lock is held elsewhere and the caller chose not to wait."""


def lock_key(model_id: str) -> int:
    """Signed 64-bit advisory-lock key for a model (PostgreSQL bigint)."""
    digest = hashlib.sha256(b"unlearn:model:" + model_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ModelLock:
    """One model's lock. `acquire(block=False)` returns False when busy; `release()` is idempotent."""

    def __init__(self, model_id: str, engine: Engine | None = None) -> None:
        self.model_id = model_id
        self.engine = engine or get_engine()
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def acquire(self, *, block: bool = False) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            return self._acquire_pg(block)
        return self._acquire_file(block)

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(self.model_id)})
            except Exception:  # the connection is gone, and its session locks with it
                conn.invalidate()
            finally:
                conn.close()  # a closed connection drops its session locks in any case
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _acquire_pg(self, block: bool) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            fn = "pg_advisory_lock" if block else "pg_try_advisory_lock"
            got = conn.execute(text(f"SELECT {fn}(:k)"), {"k": lock_key(self.model_id)}).scalar()
        except BaseException:
            conn.close()
            raise
        if got is False:
            conn.close()
            return False
        self._conn = conn
        return True

    def _acquire_file(self, block: bool) -> bool:
        path = lock_path(self.engine, self.model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def __enter__(self) -> ModelLock:
        self.acquire(block=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(engine: Engine, model_id: str) -> Path:
    """Lock file for a model on SQLite: `<database file>.locks/<model id>.lock`."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        raise RuntimeError("per-model locks on SQLite need a database file shared by the processes")
    safe = hashlib.sha256(model_id.encode()).hexdigest()[:32]
    return Path(database).resolve().parent / (Path(database).name + ".locks") / f"{safe}.lock"


@contextmanager
def model_lock(
    model_id: str, *, give_up: Callable[[], bool] | None = None, poll_s: float = POLL_S
) -> Iterator[ModelLock]:
    """Hold the model's lock for the block, polling while it is busy.

    `give_up` is asked between attempts; when it answers True the wait ends with LockUnavailable (used by jobs
    whose work was already taken over by the current holder).
    """
    lock = ModelLock(model_id)
    while not lock.acquire(block=False):
        if give_up is not None and give_up():
            raise LockUnavailable(model_id)
        time.sleep(poll_s)
    try:
        yield lock
    finally:
        lock.release()


def is_locked(model_id: str) -> bool:
    """True when some live process holds the model's lock (checked by trying it without waiting)."""
    lock = ModelLock(model_id)
    if lock.acquire(block=False):
        lock.release()
        return False
    return True


def dataset_lock_id(dataset_id: str) -> str:
    """The lock name of a data set's compaction (a ModelLock under a name no model id can take)."""
    return f"dataset:{dataset_id}"


class ModelLocks:
    """The locks of several models held together (a compaction changes the row space every one of them reads).

    Taken in sorted order, each waited for in turn: every other holder takes one model lock at a time, so the
    wait cannot deadlock. PostgreSQL: one autocommit connection holds all the advisory locks (a connection per
    lock would exhaust the pool for a data set with many models). SQLite: one ``flock`` per model file.
    """

    def __init__(self, model_ids: list[str], engine: Engine | None = None) -> None:
        self.model_ids = sorted(set(model_ids))
        self.engine = engine or get_engine()
        self._conn: Connection | None = None
        self._keys: list[int] = []
        self._fds: list[int] = []

    def acquire(self, *, timeout_s: float, poll_s: float = POLL_S) -> bool:
        """Wait up to ``timeout_s`` for every lock; on timeout nothing stays held and the answer is False."""
        deadline = time.monotonic() + timeout_s
        if self.engine.dialect.name == "postgresql":
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            for model_id in self.model_ids:
                while not self._take(model_id):
                    if time.monotonic() > deadline:
                        self.release()
                        return False
                    time.sleep(poll_s)
        except BaseException:
            self.release()
            raise
        return True

    def _take(self, model_id: str) -> bool:
        if self._conn is not None:
            key = lock_key(model_id)
            if not self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                return False
            self._keys.append(key)
            return True
        path = lock_path(self.engine, model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fds.append(fd)
        return True

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                for key in self._keys:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception:  # the connection is gone, and its session locks with it
                conn.invalidate()
            finally:
                conn.close()
        self._keys = []
        for fd in self._fds:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._fds = []
