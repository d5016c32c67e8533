"""The machine and CPU accounting: machine facts, load average, a CPU speed probe, and CPU seconds per phase
(API, workers, PostgreSQL backends, Redis, the load generator, the whole machine) read from /proc."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, text

TICK = os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": os.uname().release,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_probe() -> float:
    """CPU time (ms) of a fixed pure-Python loop on one core: how fast the machine's cores are at that moment
    (on a shared virtual machine this moves by up to 2x within minutes; the phases below are compared with it)."""
    t0 = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i * i
    return round(1000 * (time.process_time() - t0), 1)


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _system_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / TICK, total / TICK


class CpuMeter:
    """CPU seconds spent during a phase by: the API processes, the worker processes, the PostgreSQL backends
    serving the benchmark database, the Redis server (all of it), this load generator, and the machine."""

    def __init__(self, *, api: list[int], workers: list[int], admin: Engine, dbname: str, rds: redis.Redis) -> None:
        self.roots = {"api": api, "workers": workers}
        self.admin, self.dbname, self.rds = admin, dbname, rds

    def _pg_pids(self) -> list[int]:
        with self.admin.connect() as conn:
            rows = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.dbname})
            return [r[0] for r in rows]

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"t": time.perf_counter(), "self": time.process_time()}
        for name, roots in self.roots.items():
            snap[name] = {p: _proc_cpu_s(p) for root in roots for p in _descendants(root)}
        snap["postgres"] = {p: _proc_cpu_s(p) for p in self._pg_pids()}
        info = self.rds.info("cpu")
        snap["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        snap["system"] = _system_busy_s()
        return snap

    @staticmethod
    def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        wall = b["t"] - a["t"]
        out = {"wall_s": wall, "load_generator": b["self"] - a["self"], "redis_server": b["redis"] - a["redis"]}
        for name in ("api", "workers", "postgres"):
            out[name] = sum(max(0.0, v - a[name].get(p, 0.0)) for p, v in b[name].items())
        busy = b["system"][0] - a["system"][0]
        out["machine_busy"] = busy
        out["machine_capacity"] = (b["system"][1] - a["system"][1]) or wall * (os.cpu_count() or 1)
        out["everything_else"] = max(
            0.0, busy - sum(out[k] for k in ("api", "workers", "postgres", "redis_server", "load_generator"))
        )
        return {k: round(v, 3) for k, v in out.items()}
