"""The service's processes and stores for one run: PostgreSQL databases, a Redis database number and queues,
API and worker processes, a temporary folder (blobs, signing key, logs); all removed by Stack.close()."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.service.common import ROOT, log

PG_ADMIN_URL = os.environ.get("UNLEARN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("UNLEARN_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_signing_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _pick_redis_db(base: str) -> int:
    """The highest-numbered Redis database that holds no keys."""
    client = redis.Redis.from_url(f"{base}/0")
    try:
        used = set()
        for name in client.info("keyspace"):
            used.add(int(name.removeprefix("db")))
        count = int(client.config_get("databases").get("databases", 16))
    finally:
        client.close()
    for db in range(count - 1, 0, -1):
        if db not in used:
            return db
    raise RuntimeError("no empty Redis database number to use")


class Stack:
    """The processes and stores of one benchmark run, all removed by close()."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run = secrets.token_hex(4)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"unlearn-bench-{self.run}-"))
        self.redis_db = _pick_redis_db(REDIS_BASE_URL)
        self.redis_url = f"{REDIS_BASE_URL}/{self.redis_db}"
        self.rds = redis.Redis.from_url(self.redis_url)
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.databases: list[str] = []
        self.queues: list[str] = []
        self.worker_names: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.bootstrap_key = "unl_bench_" + secrets.token_urlsafe(24)
        self.key_path = self.tmp / "audit-signing-key.pem"
        _write_signing_key(self.key_path)

    def create_database(self, suffix: str) -> str:
        from app.core.migrate import upgrade

        name = f"unlearn_bench_{self.run}_{suffix}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.databases.append(name)
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return url

    def env(self, db_url: str, queue: str, blobs: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": db_url,
            "REDIS_URL": self.redis_url,
            "UNLEARN_QUEUE": queue,
            "UNLEARN_STORAGE_DIR": str(blobs),
            "UNLEARN_AUDIT_KEY_PATH": str(self.key_path),
            "UNLEARN_BOOTSTRAP_ADMIN_KEY": self.bootstrap_key,
            "UNLEARN_DEVICE": "cpu",
            "UNLEARN_RATE_LIMIT_PER_S": "0",
            "UNLEARN_LOG_LEVEL": "INFO",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.pop("UNLEARN_MAX_COALESCE", None)
        env.update(extra or {})
        return env

    def _spawn(self, cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen:
        with open(self.tmp / log_name, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=self.tmp, env=env, stdout=out, stderr=out, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_api(self, db_url: str, queue: str, blobs: Path, workers: int) -> tuple[subprocess.Popen, str]:
        port = _free_port()
        extra = {}
        if workers > 1:
            prom = self.tmp / f"prometheus-{port}"
            prom.mkdir()
            extra["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
        if self.args.server == "uvicorn":
            cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--no-access-log"]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        else:
            cmd = [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--workers", str(workers)]
        proc = self._spawn(cmd, self.env(db_url, queue, blobs, extra), f"api-{port}.log")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited with {proc.returncode}; see {self.tmp}/api-{port}.log")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return proc, url
            time.sleep(0.2)
        raise RuntimeError(f"the API did not become ready in {START_TIMEOUT_S:g} s")

    def start_workers(
        self, n: int, db_url: str, queue: str, blobs: Path, extra: dict[str, str] | None = None
    ) -> list[subprocess.Popen]:
        from rq import Queue, Worker

        procs = []
        names = []
        for i in range(n):
            name = f"bench-{self.run}-{queue.rsplit('-', 1)[-1]}-{i}"
            names.append(name)
            self.worker_names.append(name)
            cmd = [sys.executable, "-m", "workers", "--device", "cpu", "--name", name]
            procs.append(self._spawn(cmd, self.env(db_url, queue, blobs, extra), f"worker-{name}.log"))
        deadline = time.monotonic() + START_TIMEOUT_S
        q = Queue(queue, connection=self.rds)
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a worker exited with {p.returncode}; see the logs in {self.tmp}")
            if len({w.name for w in Worker.all(queue=q)} & set(names)) == n:
                return procs
            time.sleep(0.2)
        raise RuntimeError(f"the workers did not register in {START_TIMEOUT_S:g} s")

    def wait_queue_idle(self, queue: str, timeout_s: float) -> bool:
        from rq import Queue
        from rq.registry import StartedJobRegistry

        q = Queue(queue, connection=self.rds)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if q.count == 0 and StartedJobRegistry(queue=q).count == 0:
                return True
            time.sleep(0.2)
        return False

    def empty_queue(self, queue: str) -> None:
        from rq import Queue

        Queue(queue, connection=self.rds).empty()

    def stop(self, proc: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the process and its children
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc, 5.0)
        for name in self.databases:
            with contextlib.suppress(Exception), self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()
        with contextlib.suppress(Exception):
            self._clean_redis()
        self.rds.close()
        if not self.args.keep_logs:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"logs kept in {self.tmp}")

    def _clean_redis(self) -> None:
        """Delete this run's keys: its queues' keys, its jobs (by origin) and their results, its workers."""
        mine = tuple(self.queues)
        jobs = []
        for key in self.rds.scan_iter(match="rq:job:*", count=1000):
            origin = self.rds.hget(key, "origin")
            if origin is not None and origin.decode() in mine:
                jobs.append(key.decode().removeprefix("rq:job:"))
        doomed = set()
        for job in jobs:
            doomed.update({f"rq:job:{job}", f"rq:results:{job}", f"rq:job:{job}:dependents"})
        for queue in mine:
            doomed.update(k.decode() for k in self.rds.scan_iter(match=f"*{queue}*", count=1000))
        for name in self.worker_names:
            doomed.update(k.decode() for k in self.rds.scan_iter(match=f"*{name}*", count=1000))
            self.rds.srem("rq:workers", f"rq:worker:{name}")
        for queue in mine:
            self.rds.srem("rq:queues", f"rq:queue:{queue}")
        doomed = list(doomed)
        for i in range(0, len(doomed), 500):
            self.rds.delete(*doomed[i : i + 500])
        self.rds.delete("rq:clean_groups")  # RQ's registry-cleaning marker (the database was empty at start)
        for key in ("rq:workers", "rq:queues"):
            if self.rds.type(key) == b"set" and self.rds.scard(key) == 0:
                self.rds.delete(key)
