"""`python -m app.serve`: several API processes, each with its own SO_REUSEPORT socket on one port; new
connections are spread over them; SIGTERM stops them all; everything they write is JSON lines, uvicorn's own
included."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.core.migrate import upgrade

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _running(pid: int) -> bool:
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1][:4]
    except (OSError, IndexError):
        return False


def _listening_socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


def _start(tmp_path: Path, redis_url: str, queue_name: str, **popen) -> tuple[subprocess.Popen, int, Path]:
    """`python -m app.serve --workers 2` on a fresh SQLite file and a free port; (process, port, metrics folder)."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(db)
    port = _free_port()
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db,
        "REDIS_URL": redis_url,
        "UNLEARN_QUEUE": queue_name,
        "UNLEARN_STORAGE_DIR": str(tmp_path / "blobs"),
        "UNLEARN_AUDIT_KEY_PATH": str(tmp_path / "audit.pem"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    cmd = [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with open(tmp_path / "serve.log", "wb") as log:  # stdout and stderr of the launcher and its processes
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=log, **popen)
    return proc, port, metrics


def test_several_processes_share_one_port_and_stop_together(tmp_path, redis_url, queue_name):
    proc, port, metrics = _start(tmp_path, redis_url, queue_name, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        served = 0
        while time.monotonic() < deadline and served < 40:
            try:
                # a fresh connection each time, so the kernel picks a socket (a process) each time
                served += httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert served == 40
        servers = [p for p in _children(proc.pid) if _listening_socket_inodes(p)]
        assert len(servers) >= 2  # (the spawn start method adds a resource tracker child too)
        # Each process recorded requests it served (its own metric files): the connections were spread.
        assert all(list(metrics.glob(f"histogram_*{pid}.db")) for pid in servers), sorted(os.listdir(metrics))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not any(_running(pid) for pid in servers)
        # One JSON object a line, from every process; uvicorn's lines keep their values as fields.
        lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
        uvicorn = [e for e in lines if e["logger"].startswith("uvicorn")]
        for pid in servers:
            own = {e["event"]: e for e in uvicorn if e["pid"] == pid}
            assert own["Started server process [%d]"]["args"] == [pid]
            assert own["Finished server process [%d]"]["args"] == [pid]
            assert "Application startup complete." in own
        requests = [e for e in lines if e["event"] == "http.request" and e["route"] == "/healthz"]
        assert len(requests) >= served  # (a request the client gave up on is still logged)
        assert {e["pid"] for e in requests} == set(servers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_servers_stop_when_the_launcher_is_killed(tmp_path, redis_url, queue_name):
    proc, port, _ = _start(tmp_path, redis_url, queue_name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    servers = [p for p in _children(proc.pid) if _listening_socket_inodes(p)]
    assert servers
    proc.kill()  # SIGKILL: the launcher cannot stop its children
    proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    alive = servers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [
            p for p in servers if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
        ]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []
