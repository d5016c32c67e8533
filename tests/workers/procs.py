"""Real worker subprocesses for tests: a unique queue per test and `python -m workers` processes.

`workers` starts worker processes with the test's configuration (database, Redis, blob folder, queue) and
stops them at the end of the test. Every test that uses them talks to the real PostgreSQL or SQLite database
and the real Redis; nothing about the queue is faked.

A worker's reconciler looks at the whole database, so each test module gets databases of its own
(`backend_url` is overridden): work other tests leave queued or training is not picked up here.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.core import db as core_db
from app.core.config import get_settings
from app.core.migrate import upgrade
from tests.pgdb import fresh_database

ROOT = Path(__file__).resolve().parents[2]
RECONCILE_INTERVAL_S = 1.0  # seconds between reconciler passes in test workers


def _clear_caches() -> None:
    get_settings.cache_clear()
    core_db.get_engine.cache_clear()
    core_db.get_sessionmaker.cache_clear()


@pytest.fixture(scope="module")
def module_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database of this test module, migrated to head; dropped afterwards."""
    with fresh_database("unlearn_wtest") as url:
        try:
            yield url
        finally:
            _clear_caches()  # drop this module's engines before the database goes


@pytest.fixture(scope="module")
def module_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('wsqlite') / 'unlearn.db'}"
    upgrade(url)
    return url


@pytest.fixture
def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("module_pg_url" if backend == "postgresql" else "module_sqlite_url")


@pytest.fixture
def test_queue(settings, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A queue name of this test alone; its Redis keys are removed afterwards."""
    name = f"unlearn-w-{secrets.token_hex(5)}"
    monkeypatch.setenv("UNLEARN_QUEUE", name)
    monkeypatch.setenv("UNLEARN_RECONCILE_INTERVAL_S", str(RECONCILE_INTERVAL_S))
    _clear_caches()
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"*{name}*"):
        client.delete(key)
    client.close()


class Workers:
    """Worker subprocesses of one test (`python -m workers`), with their logs kept for failures."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, *, burst: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen:
        child_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        args = [sys.executable, "-m", "workers", "--device", "cpu"] + (["--burst"] if burst else [])
        proc = subprocess.Popen(args, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        proc.log_file = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.log_file.close()  # type: ignore[attr-defined]

    def logs(self) -> str:
        out = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            out.append(f"----- {path.name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(out)


@pytest.fixture
def workers(test_queue: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workers]:
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()
    procs = Workers(log_dir)
    yield procs
    procs.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(procs.logs())


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
