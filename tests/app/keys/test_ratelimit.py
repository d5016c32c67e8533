"""The per-key rate limit, shared through Redis: one allowance for every limiter (process) on the same Redis,
429 with Retry-After past it, a per-process fallback while Redis does not answer (never a 500), and two real
API processes (`python -m app.serve --workers 2`) that hold the limit together."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from app.core.errors import TooManyRequests
from app.core.migrate import upgrade
from app.keys import ratelimit
from app.keys.ratelimit import RateLimiter
from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _allowed(limiters: list[RateLimiter], key_id: str, requests: int) -> tuple[int, list[int]]:
    """Send `requests` checks round-robin over the limiters: (how many passed, Retry-After of the refused)."""
    passed, waits = 0, []
    for i in range(requests):
        try:
            limiters[i % len(limiters)].check(key_id)
            passed += 1
        except TooManyRequests as exc:
            waits.append(int(exc.headers["Retry-After"]))
    return passed, waits


@pytest.fixture
def key_id(redis_url: str):
    """A fresh key id; its windows are removed from Redis afterwards."""
    key = f"test-{uuid.uuid4()}"
    yield key
    client = redis.Redis.from_url(redis_url)
    try:
        for name in client.scan_iter(match=f"{ratelimit.KEY_PREFIX}*{key}*"):
            client.delete(name)
    finally:
        client.close()


def test_limiters_on_one_redis_share_one_allowance(redis_url, key_id):
    shared = [RateLimiter(rate_per_s=0.1, burst=5, redis_url=redis_url) for _ in range(3)]
    passed, waits = _allowed(shared, key_id, 12)
    assert passed == 5 and len(waits) == 7
    assert all(1 <= w <= 50 for w in waits)  # the window is burst / rate = 50 s
    # Three limiters of their own (per process, as before) would have let 3 x 5 through.
    assert _allowed([RateLimiter(rate_per_s=0.1, burst=5) for _ in range(3)], key_id, 12)[0] == 12
    # Other keys have their own allowance.
    assert _allowed(shared, key_id + "-other", 5)[0] == 5


def test_the_window_moves(redis_url, key_id):
    """At most `burst` in any window of burst/rate seconds: once the first request leaves it, one more passes."""
    limiter = RateLimiter(rate_per_s=2.0, burst=2, redis_url=redis_url)  # 2 per 1 s
    assert _allowed([limiter], key_id, 3)[0] == 2
    time.sleep(1.2)
    assert _allowed([limiter], key_id, 3)[0] == 2


def test_unreachable_redis_falls_back_to_the_process_bucket(caplog, key_id):
    limiter = RateLimiter(rate_per_s=0.1, burst=3, redis_url="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="app.ratelimit"):
        started = time.monotonic()
        passed, waits = _allowed([limiter], key_id, 5)
    assert passed == 3 and len(waits) == 2 and all(w >= 1 for w in waits)
    assert time.monotonic() - started < 3  # Redis is tried once, then left alone for REDIS_RETRY_S
    assert [r.msg for r in caplog.records if r.name == "app.ratelimit"] == ["ratelimit.degraded"]


def test_the_shared_limit_comes_back_with_redis(tmp_path, monkeypatch, caplog, key_id):
    """A Redis of this test: answering, stopped (fallback, no error), started again (shared again)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start() -> subprocess.Popen:
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen([*cmd, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(url).ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        proc.kill()
        raise AssertionError("redis-server did not start")

    monkeypatch.setattr(ratelimit, "REDIS_RETRY_S", 0.2)
    server = start()
    try:
        limiter = RateLimiter(rate_per_s=0.1, burst=4, redis_url=url)
        assert _allowed([limiter], key_id, 2)[0] == 2  # two of the four used, in Redis
        server.terminate()
        server.wait(timeout=10)
        with caplog.at_level(logging.INFO, logger="app.ratelimit"):
            assert _allowed([limiter], key_id, 4)[0] == 4  # the process's own bucket, full
            time.sleep(0.3)
            server = start()  # empty: the two uses recorded before are gone with the old server
            assert _allowed([limiter], key_id, 6)[0] == 4
        events = [r.msg for r in caplog.records if r.name == "app.ratelimit"]
        assert events == ["ratelimit.degraded", "ratelimit.restored"]
    finally:
        server.kill()
        server.wait(timeout=10)


def test_an_api_whose_redis_is_down_still_answers_and_limits(settings, tenant):
    from app.main import create_app

    app = create_app(
        settings.model_copy(
            update={"redis_url": "redis://127.0.0.1:1/0", "rate_limit_per_s": 0.1, "rate_limit_burst": 3}
        )
    )
    with TestClient(app, headers=auth(tenant["admin_key"])) as c:
        codes = [c.get("/v1/keys").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_two_api_processes_hold_one_limit(tmp_path, redis_url, queue_name):
    """`python -m app.serve --workers 2` with a burst of 12 per 240 s: 60 requests over fresh connections reach
    both processes (more than 12 each), and exactly 12 pass in all. Both processes' stderr is JSON lines."""
    burst, requests = 12, 60
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(db)
    port = _free_port()
    raw_key = f"unl_ratelimit_{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db,
        "REDIS_URL": redis_url,
        "UNLEARN_QUEUE": queue_name,
        "UNLEARN_STORAGE_DIR": str(tmp_path / "blobs"),
        "UNLEARN_AUDIT_KEY_PATH": str(tmp_path / "audit.pem"),
        "UNLEARN_BOOTSTRAP_ADMIN_KEY": raw_key,
        "UNLEARN_RATE_LIMIT_PER_S": str(burst / 240),
        "UNLEARN_RATE_LIMIT_BURST": str(burst),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "api.log"
    cmd = [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # both processes up: each logs app.started
            if sum('"event": "app.started"' in line for line in log_path.read_text().splitlines()) == 2:
                break
            time.sleep(0.2)
        statuses, waits = Counter(), []
        for _ in range(requests):  # a fresh connection each time, so the kernel picks a process each time
            resp = httpx.get(f"http://127.0.0.1:{port}/v1/keys", headers=auth(raw_key), timeout=30)
            statuses[resp.status_code] += 1
            if resp.status_code == 429:
                waits.append(int(resp.headers["retry-after"]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]  # JSON, every one
    served = Counter(e["pid"] for e in lines if e["event"] == "http.request" and e["route"] == "/v1/keys")
    assert len(served) == 2 and all(n > burst for n in served.values()), served
    assert statuses == {200: burst, 429: requests - burst}, statuses
    assert all(1 <= w <= 240 for w in waits)
    limited = Counter(e["pid"] for e in lines if e["event"] == "http.request" and e["status"] == 429)
    assert sum(limited.values()) == requests - burst
