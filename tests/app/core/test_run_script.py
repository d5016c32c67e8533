"""`make run` (scripts/run.sh) serves on $PORT and says so in its start banner."""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_banner_prints_the_port_it_serves_on(tmp_path, redis_url):
    port = _free_port()
    env = {
        **os.environ,
        "PY": sys.executable,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "REDIS_URL": redis_url,
        "UNLEARN_QUEUE": f"run-script-{secrets.token_hex(4)}",  # its worker takes no other test's jobs
        "UNLEARN_STORAGE_DIR": str(tmp_path / "blobs"),
        "UNLEARN_AUDIT_KEY_PATH": str(tmp_path / "key.pem"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        banner = None
        while banner is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "run: API on" in line:
                banner = line
        assert banner is not None, "".join(lines)
        assert re.search(rf"http://127\.0\.0\.1:{port}\b", banner), banner
        assert not re.search(r":8000\b", banner) or port == 8000
        assert any(f"UNLEARN_URL=http://127.0.0.1:{port}" in line for line in lines + [proc.stdout.readline()])
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("nothing answered on the port the banner printed:\n" + "".join(lines))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
